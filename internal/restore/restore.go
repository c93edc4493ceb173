package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// Options configure one restore.
type Options struct {
	// Target is the directory to restore into; it is created if missing.
	// Target itself may be a symlink; nothing below it is ever followed.
	Target string
	// Subpath is the snapshot path (slash-separated, from the root tree,
	// e.g. "home/u/docs") of a directory whose contents are restored into
	// Target instead of the whole tree: restic's SNAPSHOT:subpath.
	Subpath string
	// Include lists patterns (package pattern: globs, "**", a leading
	// '/' anchors) of the entries to restore, with everything below them
	// and the directories leading to them; empty means everything. They
	// are matched against paths as they will be below Target
	// ("/home/u/docs/a.txt", or with a Subpath relative to it). An
	// anchored pattern without wildcards names one path, which must
	// exist; "/" names the root, so everything.
	Include []string
	// Exclude lists patterns of entries not to restore, with everything
	// below them; it wins over Include.
	Exclude []string
	// Overwrite says what happens to existing entries at the target that
	// are not already what the snapshot has. Entries that are (a regular
	// file with its content, a symlink with its target, ...) are kept
	// in every mode but Never (their metadata set) and counted as
	// unchanged, so restoring again into the same place works. Existing
	// directories are always merged into.
	Overwrite Overwrite
	// DryRun decides and reports everything as a restore would, reading
	// the target (and comparing existing files' content) but writing
	// nothing.
	DryRun bool
	// Verify reads every file written back after writing it, and every
	// file kept without reading it, and compares it with the snapshot's
	// content IDs; differences are listed in Result.Mismatches.
	Verify bool
	// Owners restores uid and gid (needs root).
	Owners bool
	// Workers is the number of parallel file writers (default: CPUs + 1).
	Workers int
	// Progress, if set, is updated as the restore proceeds.
	Progress *Progress
	// Report, if set, is called for every entry restored, replaced, kept
	// or skipped (not for directories merged into, nor for errors, which
	// Result.Errors lists), from several goroutines at once.
	Report func(Entry)
}

// Overwrite is what a restore does with an existing entry that differs
// from the snapshot's, restic's --overwrite.
type Overwrite uint8

// Overwrite modes.
const (
	// OverwriteRefuse (the default) leaves it alone and reports it as
	// an error: nothing is replaced without being asked for.
	OverwriteRefuse Overwrite = iota
	// OverwriteAlways replaces it.
	OverwriteAlways
	// OverwriteIfChanged replaces it too, but takes a regular file with
	// the snapshot's size and mtime to be unchanged without reading it.
	OverwriteIfChanged
	// OverwriteIfNewer replaces it only when the snapshot's entry has a
	// newer mtime; others are left alone and counted as skipped.
	OverwriteIfNewer
	// OverwriteNever leaves every existing entry alone, without
	// comparing it, and counts it as skipped.
	OverwriteNever
)

var overwriteNames = []string{OverwriteRefuse: "", OverwriteAlways: "always", OverwriteIfChanged: "if-changed",
	OverwriteIfNewer: "if-newer", OverwriteNever: "never"}

// ParseOverwrite parses restic's --overwrite values: always, if-changed,
// if-newer, never.
func ParseOverwrite(s string) (Overwrite, error) {
	for i, name := range overwriteNames {
		if name != "" && name == s {
			return Overwrite(i), nil
		}
	}
	return 0, fmt.Errorf("--overwrite %q: want always, if-changed, if-newer or never", s)
}

// String returns the mode as --overwrite takes it ("" for the default).
func (o Overwrite) String() string {
	if int(o) < len(overwriteNames) {
		return overwriteNames[o]
	}
	return fmt.Sprintf("overwrite(%d)", uint8(o))
}

// Progress counters, safe to read concurrently.
type Progress struct {
	Files atomic.Uint64
	Dirs  atomic.Uint64
	Bytes atomic.Uint64
}

// FileError is a problem with one entry that did not stop the restore.
type FileError struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// Action is what a restore did (or, dry, would do) with an entry.
type Action uint8

// Actions.
const (
	// Restored: the entry was not at the target and was created.
	Restored Action = iota + 1
	// Replaced: something else was there and was replaced.
	Replaced
	// Kept: it was there as the snapshot has it and was left (its
	// metadata set).
	Kept
	// Skipped: something was there and the overwrite mode left it alone.
	Skipped
)

var actionNames = map[Action]string{Restored: "restore", Replaced: "replace", Kept: "keep", Skipped: "skip"}

func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Entry is one entry and what happened to it.
type Entry struct {
	// Path is where the entry is at the target.
	Path string `json:"path"`
	// PathBytes is set when Path is not valid UTF-8, which JSON strings
	// cannot carry: the exact bytes (base64 in JSON).
	PathBytes []byte            `json:"path_bytes,omitempty"`
	Type      snapshot.NodeType `json:"type"`
	Size      uint64            `json:"size,omitempty"`
	Action    Action            `json:"action"`
}

// Result is the outcome of a restore (what a dry run would do). Files,
// Dirs, Other and Bytes count what was restored, Replaced entries and
// directories merged into included; Bytes includes every hard link's
// size, as snapshot totals do. Unchanged counts the entries that were
// already there as the snapshot has them (files with its content, hard
// links in place, symlinks with its target, fifos, sockets, devices),
// UnchangedBytes the size of those files; Skipped the existing entries
// the overwrite mode left alone. Neither is in the other counts.
type Result struct {
	Files, Dirs, Other, Bytes uint64
	Replaced                  uint64
	Unchanged, UnchangedBytes uint64
	Skipped                   uint64
	// Verified and VerifiedBytes count the files read back and found to
	// hold the snapshot's content (with Verify; hard links to a file
	// verified are not read again).
	Verified, VerifiedBytes uint64
	// Errors is sorted by path.
	Errors []FileError
	// Mismatches lists the files whose content read back differs from
	// the snapshot's (with Verify), sorted by path.
	Mismatches []FileError
	// Unmatched lists the include patterns that matched no entry.
	Unmatched []string
}

var (
	errExists  = errors.New("exists; not overwritten (use --overwrite)")
	errIsDir   = errors.New("a directory is in the way; not replaced")
	errSkipped = errors.New("exists; left alone")
)

type restorer struct {
	repo   *repo.Repository
	opt    Options
	prog   *Progress
	target string // Target without a trailing slash, for messages
	prefix string // Subpath, trimmed: the snapshot path of the restore's root
	root   *fs.Dir
	sel    *selection
	jobs   chan fileJob
	blobs  *readAhead

	// links maps a hard-link group (the snapshot path its nodes name as
	// HardLink) to the file restored for it; only the walker uses it.
	links map[string]*leader

	mu         sync.Mutex
	errs       []FileError
	mismatches []FileError

	files, dirs, other, bytes atomic.Uint64
	replaced, skipped         atomic.Uint64
	unchanged, unchangedBytes atomic.Uint64
	verified, verifiedBytes   atomic.Uint64
}

// dirJob is a directory being restored. It stays open until its last child
// is done, then gets its metadata.
type dirJob struct {
	path   string         // path below the restore's root, "" for the target itself
	name   string         // name in parent
	node   *snapshot.Node // nil for the target itself
	parent *dirJob
	// included: the directory is restored with everything below it
	// (save what Exclude leaves out); otherwise it is only on the way to
	// included entries and made when the first of them is.
	included bool
	// made: the walker has made the directory (or, dry, decided about
	// it): dir is set unless err is. In a dry run dir is the existing
	// directory, opened to look into, and nil when there is none.
	made bool
	dir  *fs.Dir
	err  error
	// pending counts unfinished children plus one held by the walker.
	pending atomic.Int32
}

// Run restores the tree with root ID tree from r into opt.Target. It
// returns an error only for fatal problems (target unusable, bad include
// or exclude pattern, unreadable root tree, context cancelled); problems
// with single entries are listed in Result.Errors and do not stop the
// restore. After a cancellation the partial Result is returned along with
// the error.
func Run(ctx context.Context, r *repo.Repository, tree blob.ID, opt Options) (*Result, error) {
	if opt.Target == "" {
		return nil, errors.New("restore: no target directory")
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU() + 1
	}
	prefix := strings.Trim(opt.Subpath, "/")
	if prefix != "" {
		n, err := snapshot.FindPath(ctx, r, tree, prefix)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", opt.Subpath, err)
		}
		if n.Type != snapshot.Dir {
			return nil, fmt.Errorf("restore %s: it is a %s, not a directory (SNAPSHOT:PATH restores a directory's contents; for one file use --include)", opt.Subpath, n.Type)
		}
		tree = n.Subtree
	}
	root, err := snapshot.LoadTree(ctx, r, tree)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	sel, err := newSelection(ctx, r, tree, opt.Include, opt.Exclude)
	if err != nil {
		return nil, err
	}
	// Only now, with every include path known to exist, touch the target.
	rootDir, err := openTarget(opt.Target, opt.DryRun)
	if err != nil {
		return nil, err
	}
	w := newRestorer(r, opt, rootDir)
	w.prefix, w.sel = prefix, sel

	var workers sync.WaitGroup
	if !opt.DryRun {
		for range opt.Workers {
			workers.Go(func() { w.worker(ctx) })
		}
	}
	top := &dirJob{dir: rootDir, made: true, included: sel.all()}
	top.pending.Store(1)
	w.walk(ctx, top, root)
	top.childDone(w)
	close(w.jobs)
	workers.Wait()
	if rootDir != nil {
		rootDir.Close()
	}

	res := &Result{Files: w.files.Load(), Dirs: w.dirs.Load(), Other: w.other.Load(), Bytes: w.bytes.Load(),
		Replaced: w.replaced.Load(), Unchanged: w.unchanged.Load(), UnchangedBytes: w.unchangedBytes.Load(), Skipped: w.skipped.Load(),
		Verified: w.verified.Load(), VerifiedBytes: w.verifiedBytes.Load(), Unmatched: sel.unmatched()}
	w.mu.Lock()
	res.Errors, res.Mismatches = w.errs, w.mismatches
	w.mu.Unlock()
	byPath := func(a, b FileError) int { return strings.Compare(a.Path, b.Path) }
	slices.SortStableFunc(res.Errors, byPath)
	slices.SortStableFunc(res.Mismatches, byPath)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("restore %s: %w", opt.Target, err)
	}
	return res, nil
}

// newRestorer returns a restorer of everything into root.
func newRestorer(r *repo.Repository, opt Options, root *fs.Dir) *restorer {
	prog := opt.Progress
	if prog == nil {
		prog = &Progress{}
	}
	return &restorer{repo: r, opt: opt, prog: prog, target: strings.TrimRight(opt.Target, "/"), root: root, sel: &selection{},
		jobs: make(chan fileJob, 4*opt.Workers), links: map[string]*leader{}, blobs: newReadAhead(r)}
}

// openTarget creates (unless dry) and opens the target directory; a dry
// run on a target that does not exist yet gets nil.
func openTarget(target string, dry bool) (*fs.Dir, error) {
	if dry {
		d, err := fs.OpenDirFollow(target)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		return d, nil
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, fmt.Errorf("restore %s: %w", target, err)
	}
	d, err := fs.OpenDirFollow(target)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return d, nil
}

func joinSnap(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// display turns a path below the restore's root into the path at the
// target.
func (w *restorer) display(p string) string {
	if p == "" {
		return w.opt.Target
	}
	return w.target + "/" + p
}

// report records what stopped the entry at p from being restored; an
// entry the overwrite mode leaves alone (errSkipped) is counted as
// skipped instead.
func (w *restorer) report(p string, n *snapshot.Node, err error) {
	if errors.Is(err, errSkipped) && n != nil {
		w.skipped.Add(1)
		w.notify(p, n, Skipped)
		return
	}
	w.mu.Lock()
	w.errs = append(w.errs, FileError{Path: w.display(p), Err: fs.ErrorText(err)})
	w.mu.Unlock()
}

// notify sends an entry's action to Options.Report.
func (w *restorer) notify(p string, n *snapshot.Node, a Action) {
	if w.opt.Report == nil {
		return
	}
	e := Entry{Path: w.display(p), Type: n.Type, Action: a}
	if !utf8.ValidString(e.Path) {
		e.PathBytes = []byte(e.Path)
	}
	if n.Type == snapshot.File {
		e.Size = n.Size
	}
	w.opt.Report(e)
}

// restored counts an entry written, new or replacing what was there.
func (w *restorer) restored(p string, n *snapshot.Node, replaced bool) {
	switch n.Type {
	case snapshot.File:
		w.files.Add(1)
		w.bytes.Add(n.Size)
		w.prog.Files.Add(1)
	case snapshot.Dir:
		w.dirs.Add(1)
		w.prog.Dirs.Add(1)
	default:
		w.other.Add(1)
	}
	a := Restored
	if replaced {
		w.replaced.Add(1)
		a = Replaced
	}
	w.notify(p, n, a)
}

// merged counts a directory that was there and is merged into.
func (w *restorer) merged() {
	w.dirs.Add(1)
	w.prog.Dirs.Add(1)
}

// kept counts an entry that was already there as the snapshot has it.
func (w *restorer) kept(p string, n *snapshot.Node) {
	w.unchanged.Add(1)
	if n.Type == snapshot.File {
		w.unchangedBytes.Add(n.Size)
	}
	w.notify(p, n, Kept)
}

// walk restores the entries of tree t into directory d, depth-first in
// name order, which is the order hard-link groups were recorded in.
func (w *restorer) walk(ctx context.Context, d *dirJob, t *snapshot.Tree) {
	for i := range t.Nodes {
		if ctx.Err() != nil {
			return
		}
		n := &t.Nodes[i]
		// DecodeTree already refuses these names; checking again keeps
		// this package safe on its own. The error names the entry; the
		// path is its directory's, as joining a bad name would mislead.
		if err := snapshot.ValidName(n.Name); err != nil {
			w.report(d.path, nil, err)
			continue
		}
		p := joinSnap(d.path, n.Name)
		included, below := w.sel.pick("/"+p, n.Type == snapshot.Dir, d.included)
		switch {
		case included && n.Type == snapshot.Dir:
			w.restoreDir(ctx, d, n, p, true)
		case included:
			if err := w.ensure(d); err != nil {
				continue // reported with d
			}
			if w.opt.DryRun {
				w.planEntry(ctx, d, n, p)
			} else if n.Type == snapshot.File {
				w.restoreFile(ctx, d, n, p)
			} else {
				w.restoreOther(d, n, p)
			}
		case below:
			w.restoreDir(ctx, d, n, p, false)
		}
	}
}

// restoreDir restores directory n (at p, in parent) and what is selected
// below it. A directory not itself included is made only once an entry
// below it is.
func (w *restorer) restoreDir(ctx context.Context, parent *dirJob, n *snapshot.Node, p string, included bool) {
	d := &dirJob{path: p, name: n.Name, node: n, parent: parent, included: included}
	if included && w.ensure(d) != nil {
		return // reported
	}
	d.pending.Store(1)
	parent.pending.Add(1)
	t, err := snapshot.LoadTree(ctx, w.repo, n.Subtree)
	switch {
	case err == nil:
		w.walk(ctx, d, t)
	case ctx.Err() == nil:
		w.report(p, nil, fmt.Errorf("contents not restored: %w", err))
	}
	d.childDone(w)
}

// ensure makes directory d, and the directories leading to it, at the
// target (dry: decides what would happen to them). Only the walker calls
// it; a failure is reported once, for the directory that failed.
func (w *restorer) ensure(d *dirJob) error {
	if d.made {
		return d.err
	}
	d.made = true
	if err := w.ensure(d.parent); err != nil {
		d.err = err
		return err
	}
	if w.opt.DryRun {
		d.dir, d.err = w.planDir(d)
	} else {
		d.dir, d.err = w.makeDir(d)
	}
	if d.err != nil {
		w.report(d.path, d.node, d.err)
	}
	return d.err
}

// makeDir creates (or, if it exists, merges into) directory d and opens
// it. Something else in its place is dealt with as the overwrite mode
// says.
func (w *restorer) makeDir(d *dirJob) (*fs.Dir, error) {
	parent, name := d.parent.dir, d.name
	replaced, merged := false, false
	err := parent.Mkdir(name, 0o700)
	if errors.Is(err, fs.ErrExist) {
		var st fs.Stat
		st, err = parent.Lstat(name)
		merged = err == nil && st.IsDir()
		if err == nil && !merged {
			if err = w.replaceable(st, d.node); err == nil {
				if err = parent.Remove(name); err == nil {
					err = parent.Mkdir(name, 0o700)
					replaced = true
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	dir, err := parent.OpenDir(name)
	if err != nil {
		return nil, err
	}
	// A directory merged into (or made under an odd umask) may be closed
	// to us; it gets its final mode once its contents are restored.
	if st, err := dir.Stat(); err == nil && st.Mode&0o700 != 0o700 && int(st.UID) == os.Geteuid() {
		_ = dir.Chmod(st.Mode&0o7777 | 0o700)
	}
	if merged {
		w.merged()
	} else {
		w.restored(d.path, d.node, replaced)
	}
	return dir, nil
}

// childDone records that one child (or the walker) is done with d; the
// last one applies d's metadata, closes it and tells its parent.
func (d *dirJob) childDone(w *restorer) {
	if d.pending.Add(-1) != 0 {
		return
	}
	if d.parent == nil {
		// The target itself: its metadata is not the snapshot's.
		return
	}
	if d.dir != nil {
		if !w.opt.DryRun {
			if err := w.setMeta(d.parent.dir, d.name, d.dir, d.node); err != nil {
				w.report(d.path, nil, err)
			}
		}
		d.dir.Close()
	}
	d.parent.childDone(w)
}

// linkKey names the hard-link group of a file node at p (below the
// restore's root), "" for none. Groups are named by snapshot paths from
// the root tree, as HardLink records them.
func (w *restorer) linkKey(n *snapshot.Node, p string) string {
	switch {
	case n.HardLink != "":
		return n.HardLink
	case n.MultiLink:
		return joinSnap(w.prefix, p)
	}
	return ""
}
