package restore

import (
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// What to do with an entry found in a file's place.
type verdictKind uint8

const (
	// absent: nothing is there (any more).
	absent verdictKind = iota
	// sameMeta: a regular file with the snapshot's size and mtime, which
	// --overwrite if-changed takes as unchanged without reading it.
	sameMeta
	// compare: a regular file of the snapshot's size, opened for reading
	// to compare its content.
	compare
	// replace: something else, which the overwrite mode replaces.
	replace
)

type verdict struct {
	kind verdictKind
	st   fs.Stat
	f    *fs.File // with compare
}

// inspect looks at the entry in the place of file node n in dir and
// decides about it, for a restore and a dry run alike. It fails with
// errSkipped when the overwrite mode leaves the entry alone (without
// reading it), errExists or errIsDir when it is not to be replaced, or
// the error of looking.
func (w *restorer) inspect(dir *fs.Dir, n *snapshot.Node) (verdict, error) {
	st, err := dir.Lstat(n.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return verdict{kind: absent}, nil
	}
	if err != nil {
		return verdict{}, fmt.Errorf("inspect existing entry: %w", err)
	}
	if w.leaveAlone(st, n) {
		return verdict{}, errSkipped
	}
	if st.IsRegular() && uint64(st.Size) == n.Size {
		if w.opt.Overwrite == OverwriteIfChanged && st.MTime == n.MTime {
			return verdict{kind: sameMeta, st: st}, nil
		}
		if f, err := dir.OpenFile(n.Name); err == nil {
			fst, err := f.Stat()
			if err == nil && fst.IsRegular() && fst.Dev == st.Dev && fst.Ino == st.Ino && fst.Size == st.Size {
				return verdict{kind: compare, st: fst, f: f}, nil
			}
			f.Close()
		}
		// Unreadable, or replaced meanwhile: a file that cannot be
		// compared is a different one.
	}
	if err := w.replaceable(st, n); err != nil {
		return verdict{}, err
	}
	return verdict{kind: replace, st: st}, nil
}

// leaveAlone reports whether the overwrite mode leaves the existing entry
// st alone whatever it holds: never, or if-newer when the snapshot's
// entry is not newer.
func (w *restorer) leaveAlone(st fs.Stat, n *snapshot.Node) bool {
	switch w.opt.Overwrite {
	case OverwriteNever:
		return true
	case OverwriteIfNewer:
		return n.MTime <= st.MTime
	}
	return false
}

// replaceable decides about the existing entry st in the place of n,
// which is not what n describes: nil to replace it, errSkipped when the
// overwrite mode leaves it alone, errIsDir for a directory (never
// removed), errExists when the default mode refuses.
func (w *restorer) replaceable(st fs.Stat, n *snapshot.Node) error {
	switch {
	case w.leaveAlone(st, n):
		return errSkipped
	case st.IsDir():
		return errIsDir
	case w.opt.Overwrite == OverwriteRefuse:
		return errExists
	}
	return nil
}
