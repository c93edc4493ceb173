package changes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Source kinds, as stored in cursors.
const (
	KindFanotify = "fanotify"
	KindInotify  = "inotify"
)

// Cursor is a position in the journal, stored (as JSON) with a snapshot.
type Cursor struct {
	// Kind is the watcher's primary source: "fanotify" or "inotify".
	Kind string `json:"kind"`
	// Epoch identifies one run of the watcher; records of different epochs
	// never join into one delta.
	Epoch string `json:"epoch"`
	// Seq is the sequence number of a record in that epoch.
	Seq uint64 `json:"seq"`
}

// IsZero reports whether c is the zero cursor (no cursor).
func (c Cursor) IsZero() bool { return c == Cursor{} }

func (c Cursor) String() string { return fmt.Sprintf("%s:%s:%d", c.Kind, c.Epoch, c.Seq) }

// Delta lists what may have changed between two cursors. All paths are
// absolute and clean, sorted, and at or below one of the requested roots.
// Listed paths may no longer exist (a directory that was changed and then
// deleted); the deletion itself is recorded on its parent.
type Delta struct {
	// Dirs are directories whose entries, or whose entries' metadata or
	// content, may have changed: each must be listed again and every entry
	// compared with the parent snapshot. A root that is not a directory is
	// listed here when it changed itself.
	Dirs []string `json:"dirs"`
	// Trees are directories that were created or moved in, or whose whole
	// subtree may have changed unseen (a root that was replaced, a
	// filesystem mounted or unmounted inside a root): everything below them
	// must be scanned, not reused from the parent snapshot by name. Their
	// parents are in Dirs.
	Trees []string `json:"trees,omitempty"`
	// Inodes are files whose inode changed in a way that concerns every
	// hard link to it (a link added or removed, metadata or content of a
	// multiply-linked file). Apply each to every known path of the inode.
	Inodes []Inode `json:"inodes,omitempty"`
}

// Inode identifies a changed file: by a path (one of its links, possibly
// one that has just been removed), by device and inode number, or both.
// Device numbers are those of the running system (an epoch never outlives a
// boot).
type Inode struct {
	Path string `json:"path,omitempty"`
	Dev  uint64 `json:"dev,omitempty"`
	Ino  uint64 `json:"ino,omitempty"`
	// LinkAdded: a hard link to the inode was made outside the requested
	// roots (at Outside, when known), so its link count rose. If the
	// inode has a link inside, that link may have been its only one
	// until now: its hard-link identity changed, and no record of
	// multiply-linked files can rule it out.
	LinkAdded bool   `json:"link_added,omitempty"`
	Outside   string `json:"outside,omitempty"`
	// Mapped: a file mapped shared and writable whose name could not be
	// verified (removed, or in another mount namespace): its number is
	// all there is, and its one name, if it is in a backup, is not in the
	// records of multiply-linked files.
	Mapped bool `json:"mapped,omitempty"`
}

// merge returns the union of d and o, sorted, without duplicates.
func (d Delta) merge(o Delta) Delta {
	b := newDeltaBuilder(nil)
	for _, x := range []Delta{d, o} {
		for _, p := range x.Dirs {
			b.dirs[p] = struct{}{}
		}
		for _, p := range x.Trees {
			b.trees[p] = struct{}{}
		}
		for _, in := range x.Inodes {
			b.inodes[in] = struct{}{}
		}
	}
	return b.delta()
}

// within restricts d to roots as Since does: paths outside them are
// dropped, and an inode known by a path outside them is kept by its number
// alone (a link inside may have it).
func (d Delta) within(roots []string) Delta {
	var out Delta
	for _, p := range d.Dirs {
		if underAny(p, roots) {
			out.Dirs = append(out.Dirs, p)
		}
	}
	for _, p := range d.Trees {
		if underAny(p, roots) {
			out.Trees = append(out.Trees, p)
		}
	}
	for _, in := range d.Inodes {
		if in.Path != "" && !underAny(in.Path, roots) {
			if in.Ino == 0 {
				continue
			}
			in.Path = ""
		}
		out.Inodes = append(out.Inodes, in)
	}
	return out
}

// ErrGap is matched (errors.Is) by every error saying that no uninterrupted
// change record exists; the caller falls back to a full scan.
var ErrGap = errors.New("no uninterrupted change record")

// GapError is an ErrGap with its reason.
type GapError struct {
	// Reason is short: "watcher not running", "epoch changed", "overflow",
	// "watch limit", "unsupported filesystem", "journal error: ...".
	Reason string
}

func (e *GapError) Error() string { return "no uninterrupted change record: " + e.Reason }

// Is makes errors.Is(err, ErrGap) true.
func (e *GapError) Is(target error) bool { return target == ErrGap }

func gapf(format string, args ...any) error {
	return &GapError{Reason: fmt.Sprintf(format, args...)}
}

// DefaultStateDir returns $XDG_STATE_HOME/tidemark, else
// ~/.local/state/tidemark.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "tidemark"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "tidemark"), nil
}

// layout names the files of a state directory.
type layout struct{ dir string }

func (l layout) lock() string              { return filepath.Join(l.dir, "lock") }
func (l layout) watcher() string           { return filepath.Join(l.dir, "watcher.json") }
func (l layout) fences() string            { return filepath.Join(l.dir, "fences") }
func (l layout) journal() string           { return filepath.Join(l.dir, "journal") }
func (l layout) epoch(e string) string     { return filepath.Join(l.dir, "journal", e) }
func (l layout) epochMeta(e string) string { return filepath.Join(l.dir, "journal", e, "epoch.json") }
func (l layout) sets() string              { return filepath.Join(l.dir, "sets") }
func (l layout) set(hexName string) string { return filepath.Join(l.dir, "sets", hexName+".json") }
