package app

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/plan"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// BackupOptions configure a backup.
type BackupOptions struct {
	Paths    []string
	Excludes []string
	// ExcludeFiles are read for more patterns, one per line.
	ExcludeFiles  []string
	OneFileSystem bool
	// ReadAll reads every file, even when the parent says it is unchanged.
	ReadAll bool
	Tags    []string
	// Host is recorded instead of the machine's name.
	Host string
	// Scan is plan.ScanAuto (or ""), plan.ScanFull or plan.ScanJournal.
	Scan   string
	Policy plan.Policy
	// ChangedFrom names a file listing changed paths (an external list
	// source) used instead of the change journal.
	ChangedFrom string
	// StateDir is the change journal's state directory ("" for the
	// default); no such directory means no journal.
	StateDir string
	// NoJournal does not consult the change journal at all.
	NoJournal bool
	// RacyWindow is passed to the archiver (tests shorten it).
	RacyWindow time.Duration
	// Events receives ScanStarted and, every ProgressInterval (default
	// 250 ms), Progress.
	Events           func(Event)
	ProgressInterval time.Duration
}

// BackupResult is a saved snapshot and what its backup met.
type BackupResult struct {
	// Snapshot is the record saved.
	Snapshot *snapshot.Snapshot `json:"-"`

	ID      blob.ID             `json:"snapshot"`
	Parent  *blob.ID            `json:"parent"`
	Tree    blob.ID             `json:"tree"`
	Roots   []string            `json:"roots"`
	Scan    snapshot.ScanInfo   `json:"scan"`
	Totals  snapshot.Aggregates `json:"totals"`
	Summary snapshot.Summary    `json:"summary"`
	// Errors are the paths that could not be read (and warnings about
	// files that changed while read).
	Errors []archive.FileError `json:"errors"`
}

// Partial reports whether some entries could not be read.
func (r *BackupResult) Partial() bool { return r.Summary.Errors > 0 }

// Backup makes a snapshot of opt.Paths.
func (a *Repo) Backup(ctx context.Context, opt BackupOptions) (*BackupResult, error) {
	bopt := backup.Options{Paths: opt.Paths, Excludes: opt.Excludes, OneFileSystem: opt.OneFileSystem, ReadAll: opt.ReadAll,
		Tags: opt.Tags, Host: opt.Host, Scan: opt.Scan, Policy: opt.Policy, RacyWindow: opt.RacyWindow}
	for _, f := range opt.ExcludeFiles {
		pats, err := scan.ReadPatternFile(f)
		if err != nil {
			return nil, err
		}
		bopt.Excludes = append(bopt.Excludes, pats...)
	}
	if !opt.NoJournal || opt.ChangedFrom != "" {
		src, err := changeSource(opt.ChangedFrom, opt.StateDir)
		if err != nil {
			return nil, err
		}
		bopt.Source = src
	}
	st, err := a.state()
	if err != nil {
		return nil, err
	}

	events := emitter(opt.Events)
	prog := &archive.Progress{}
	bopt.Progress = prog
	ticker := progressTicker{prog: prog, events: events, every: opt.ProgressInterval}
	bopt.Started = func(p backup.Plan) {
		ev := ScanStarted{Mode: p.Mode, Reason: p.Reason, Declined: p.Declined}
		if p.Parent != nil {
			id := p.Parent.ID
			ev.Parent, ev.EstFiles, ev.EstBytes = &id, p.Parent.Totals.Files, p.Parent.Totals.Bytes
		}
		ticker.stop(false)
		events.send(ev)
		ticker.start()
	}
	res, err := backup.Run(ctx, a.r, st, bopt)
	ticker.stop(err == nil)
	if err != nil {
		return nil, err
	}
	sn := res.Snapshot
	return &BackupResult{Snapshot: sn, ID: sn.ID, Parent: sn.Parent, Tree: sn.Tree, Roots: sn.Roots, Scan: sn.Scan,
		Totals: sn.Totals, Summary: sn.Summary, Errors: res.Errors}, nil
}

// changeSource returns the external list in changedFrom, else the change
// journal in stateDir (default: the standard state directory). No state
// directory means no journal, not an error: the backup then scans fully
// and says why.
func changeSource(changedFrom, stateDir string) (changes.Source, error) {
	if changedFrom != "" {
		list, err := changes.ReadList(changedFrom)
		if err != nil {
			return nil, err
		}
		return changes.ExternalList(changedFrom, list), nil
	}
	dir, err := journalStateDir(stateDir)
	if err != nil {
		return nil, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, nil
	}
	j, err := changes.OpenJournal(dir)
	if err != nil {
		return nil, fmt.Errorf("open change journal in %s: %w", dir, err)
	}
	return changes.JournalSource(j, changes.DefaultFenceTimeout), nil
}

// progressTicker sends a scan's counters as Progress events.
type progressTicker struct {
	prog   *archive.Progress
	events emitter
	every  time.Duration

	began time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

func (t *progressTicker) start() {
	t.began = time.Now()
	if t.events == nil {
		return
	}
	every := t.every
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	t.done = make(chan struct{})
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-t.done:
				return
			case <-tk.C:
				t.events.send(t.snapshot(false))
			}
		}
	}()
}

// stop ends the reports of one scan; final sends the last counters.
func (t *progressTicker) stop(final bool) {
	if t.done == nil {
		return
	}
	close(t.done)
	t.wg.Wait()
	t.done = nil
	if final {
		t.events.send(t.snapshot(true))
	}
}

func (t *progressTicker) snapshot(done bool) Progress {
	p := t.prog
	cur, _ := p.Current.Load().(string)
	return Progress{Files: p.Files.Load(), Dirs: p.Dirs.Load(), Bytes: p.Bytes.Load(), BytesRead: p.BytesRead.Load(),
		Errors: p.Errors.Load(), Current: cur, Elapsed: time.Since(t.began), Done: done}
}

// journalStateDir returns dir, or the default state directory.
func journalStateDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return changes.DefaultStateDir()
}
