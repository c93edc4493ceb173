package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/state"
)

// FenceTimeout bounds the wait for the watcher to record a fence; a healthy
// watcher answers within its flush interval.
const FenceTimeout = 10 * time.Second

// changeJournal adapts the on-disk change journal to what a backup needs.
type changeJournal struct{ j *changes.Journal }

// ChangeJournal returns the journal in stateDir as a backup's change source.
func ChangeJournal(j *changes.Journal) Journal { return changeJournal{j} }

func (c changeJournal) Fence(ctx context.Context, roots []string) (json.RawMessage, error) {
	cur, err := c.j.Fence(ctx, roots, FenceTimeout)
	if err != nil {
		return nil, err
	}
	return json.Marshal(cur)
}

func (c changeJournal) Since(ctx context.Context, from, to json.RawMessage, roots []string) (Delta, error) {
	var f, t changes.Cursor
	if err := json.Unmarshal(from, &f); err != nil {
		return Delta{}, fmt.Errorf("the parent's cursor is unreadable: %v", err)
	}
	if err := json.Unmarshal(to, &t); err != nil {
		return Delta{}, fmt.Errorf("the new cursor is unreadable: %v", err)
	}
	d, err := c.j.Since(f, t, roots)
	if err != nil {
		return Delta{}, err
	}
	out := Delta{Dirs: d.Dirs, Trees: d.Trees}
	for _, in := range d.Inodes {
		if in.Path == "" {
			if in.Ino == 0 {
				out.FullScan = "a hard-linked file changed and neither its path nor its inode is known"
				break
			}
			out.Inodes = append(out.Inodes, state.DevIno{Dev: in.Dev, Ino: in.Ino})
			continue
		}
		// Listing the directory of one link meets the hard-linked file,
		// and the scan then declines in favour of a full one.
		out.Dirs = append(out.Dirs, filepath.Dir(in.Path))
		if in.Ino != 0 {
			out.Links = append(out.Links, Link{Path: in.Path, DevIno: state.DevIno{Dev: in.Dev, Ino: in.Ino}})
		}
	}
	return out, nil
}

func (c changeJournal) Release(set string, cur json.RawMessage) error {
	var t changes.Cursor
	if err := json.Unmarshal(cur, &t); err != nil {
		return fmt.Errorf("cursor: %w", err)
	}
	return c.j.Release(set, t)
}
