package app

import (
	"context"
	"fmt"

	"github.com/tidemark/tidemark/internal/changes"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	// StateDir holds the journal ("" for the default state directory).
	StateDir string
	// ForceInotify uses inotify even where fanotify would work.
	ForceInotify bool
	// Events receives the watcher's log as Log events.
	Events func(Event)
}

// Watch records the changes below paths into the change journal until ctx
// is cancelled; a cancelled watch is a clean stop, not an error.
func Watch(ctx context.Context, paths []string, opt WatchOptions) error {
	dir, err := journalStateDir(opt.StateDir)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { emitter(opt.Events).send(Log{Message: fmt.Sprintf(format, args...)}) }
	logf("state directory %s", dir)
	err = changes.Watch(ctx, dir, paths, changes.WatchOptions{Log: logf, ForceInotify: opt.ForceInotify})
	if err == nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// JournalStatus describes the change journal in stateDir ("" for the
// default): the watcher, its sources and filesystems, gaps and size.
func JournalStatus(stateDir string) (*changes.Status, error) {
	dir, err := journalStateDir(stateDir)
	if err != nil {
		return nil, err
	}
	j, err := changes.OpenJournal(dir)
	if err != nil {
		return nil, err
	}
	st, err := j.Status()
	if err != nil {
		return nil, err
	}
	return &st, nil
}
