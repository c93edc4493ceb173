package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// A dry run walks the snapshot as a restore does and makes the same
// decisions, through the same functions (inspect, replaceable,
// sameContent, sameEntry), looking at the target through read-only
// descriptors: it counts and reports what a restore would do and writes
// nothing. It runs in the walker alone; no worker is started.

// planDir decides what a restore would do with directory d: merge into
// the directory there (opened, to look into it), create it (nil: nothing
// below it exists), or replace, leave or refuse what is in its place.
func (w *restorer) planDir(d *dirJob) (*fs.Dir, error) {
	parent := d.parent.dir
	if parent == nil {
		w.restored(d.path, d.node, false)
		return nil, nil
	}
	st, err := parent.Lstat(d.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.restored(d.path, d.node, false)
		return nil, nil
	case err != nil:
		return nil, err
	case st.IsDir():
		dir, err := parent.OpenDir(d.name)
		if err != nil {
			return nil, err
		}
		w.merged()
		return dir, nil
	}
	if err := w.replaceable(st, d.node); err != nil {
		return nil, err
	}
	w.restored(d.path, d.node, true)
	return nil, nil
}

// planEntry decides what a restore would do with n, a non-directory at p
// in d.
func (w *restorer) planEntry(ctx context.Context, d *dirJob, n *snapshot.Node, p string) {
	if n.Type != snapshot.File {
		w.planOther(d.dir, n, p)
		return
	}
	key := w.linkKey(n, p)
	if ld := w.links[key]; ld != nil {
		w.planLink(ctx, d.dir, ld, n, p)
		return
	}
	ld := &leader{}
	ld.ok, ld.dev, ld.ino = w.planFile(ctx, d.dir, n, p)
	if key != "" {
		w.links[key] = ld
	}
}

// planFile decides about file n at p in dir (nil: not there). ok says
// the file would be in place afterwards; dev and ino name it when it is
// there already (kept).
func (w *restorer) planFile(ctx context.Context, dir *fs.Dir, n *snapshot.Node, p string) (ok bool, dev, ino uint64) {
	if dir == nil {
		w.restored(p, n, false)
		return true, 0, 0
	}
	v, err := w.inspect(dir, n)
	if err != nil {
		w.report(p, n, err)
		return false, 0, 0
	}
	switch v.kind {
	case absent:
		w.restored(p, n, false)
		return true, 0, 0
	case sameMeta:
		w.kept(p, n)
		return true, v.st.Dev, v.st.Ino
	case compare:
		same, cerr := w.sameContent(ctx, v.f, n)
		v.f.Close()
		if same {
			w.kept(p, n)
			return true, v.st.Dev, v.st.Ino
		}
		if err := w.replaceable(v.st, n); err != nil {
			if cerr != nil && errors.Is(err, errExists) {
				err = fmt.Errorf("%w; comparing it with the snapshot failed: %w", err, cerr)
			}
			w.report(p, n, err)
			return false, 0, 0
		}
	}
	w.restored(p, n, true)
	return true, 0, 0
}

// planLink decides about n, a further name of the hard-linked file ld
// stands for: kept when it already is that file, else linked (in the
// place of what is there, as the mode allows); written as a file of its
// own when the first name would not be restored.
func (w *restorer) planLink(ctx context.Context, dir *fs.Dir, ld *leader, n *snapshot.Node, p string) {
	if !ld.ok {
		w.planFile(ctx, dir, n, p)
		return
	}
	if dir == nil {
		w.restored(p, n, false)
		return
	}
	st, err := dir.Lstat(n.Name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.restored(p, n, false)
	case err != nil:
		w.report(p, n, err)
	case ld.ino != 0 && st.IsRegular() && st.Dev == ld.dev && st.Ino == ld.ino:
		w.kept(p, n)
	default:
		if err := w.replaceable(st, n); err != nil {
			w.report(p, n, err)
			return
		}
		w.restored(p, n, true)
	}
}

// planOther decides about n, a symlink, fifo, socket or device, at p in
// dir (nil: not there).
func (w *restorer) planOther(dir *fs.Dir, n *snapshot.Node, p string) {
	if otherCreate(dir, n) == nil {
		w.report(p, nil, fmt.Errorf("unknown entry type %s", n.Type))
		return
	}
	if dir == nil {
		w.restored(p, n, false)
		return
	}
	st, err := dir.Lstat(n.Name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.restored(p, n, false)
	case err != nil:
		w.report(p, n, err)
	case sameEntry(dir, n):
		w.kept(p, n)
	default:
		if err := w.replaceable(st, n); err != nil {
			w.report(p, n, err)
			return
		}
		w.restored(p, n, true)
	}
}
