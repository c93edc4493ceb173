package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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
	// Include lists snapshot paths (slash-separated, relative to the root
	// tree, e.g. "home/u/docs") to restore, with the directories leading to
	// them; empty means everything.
	Include []string
	// Overwrite replaces existing non-directory entries at the target.
	// Without it an existing entry is reported as an error and left alone,
	// unless it already is what the snapshot has (a regular file with its
	// content, a symlink with its target, ...): such an entry is kept
	// either way (its metadata set) and counted as unchanged, so restoring
	// again into the same place works.
	// Existing directories are always merged into.
	Overwrite bool
	// Owners restores uid and gid (needs root).
	Owners bool
	// Workers is the number of parallel file writers (default: CPUs + 1).
	Workers int
	// Progress, if set, is updated as the restore proceeds.
	Progress *Progress
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

// Result is the outcome of a restore. Files, Dirs, Other and Bytes count
// what was restored; Bytes includes every hard link's size, as snapshot
// totals do. Unchanged counts the entries that were already there as the
// snapshot has them (files with its content, hard links in place,
// symlinks with its target, fifos, sockets, devices), UnchangedBytes the
// size of those files; they are not in the other counts.
type Result struct {
	Files, Dirs, Other, Bytes uint64
	Unchanged, UnchangedBytes uint64
	// Errors is sorted by path.
	Errors []FileError
}

var (
	errExists = errors.New("exists; not overwritten (use --overwrite)")
	errIsDir  = errors.New("a directory is in the way; not replaced")
)

type restorer struct {
	repo   *repo.Repository
	opt    Options
	prog   *Progress
	target string // Target without a trailing slash, for messages
	root   *fs.Dir
	jobs   chan fileJob
	blobs  *readAhead

	// links maps a hard-link group (the snapshot path its nodes name as
	// HardLink) to the file restored for it; only the walker uses it.
	links map[string]*leader

	mu   sync.Mutex
	errs []FileError

	files, dirs, other, bytes atomic.Uint64
	unchanged, unchangedBytes atomic.Uint64
}

// dirJob is a directory being restored. It stays open until its last child
// is done, then gets its metadata.
type dirJob struct {
	path   string         // snapshot path, "" for the target itself
	name   string         // name in parent
	node   *snapshot.Node // nil for the target itself
	parent *dirJob
	dir    *fs.Dir
	// pending counts unfinished children plus one held by the walker.
	pending atomic.Int32
}

// leader is the first restored file of a hard-link group. done is closed
// once its content is written; ok (set before) says it succeeded.
type leader struct {
	dir      *dirJob
	path     string
	done     chan struct{}
	ok       bool
	dev, ino uint64
}

// fileJob is a regular file handed to a worker: either f is an empty file
// the walker created, or f is a file that was already there (existing),
// opened for reading, or linkTo names the file to hard-link to.
type fileJob struct {
	dir    *dirJob
	node   *snapshot.Node
	path   string
	f      *fs.File
	lead   *leader // set when this file is its group's leader
	linkTo *leader
	// existing: f is the file that was in the way, of the snapshot's size;
	// the worker keeps it if its content is the snapshot's. It is never
	// removed but to be replaced (with Overwrite).
	existing bool
	// existingStat is its stat from when it was opened.
	existingStat fs.Stat
}

// Run restores the tree with root ID tree from r into opt.Target. It
// returns an error only for fatal problems (target unusable, bad include
// path, unreadable root tree, context cancelled); problems with single
// entries are listed in Result.Errors and do not stop the restore. After a
// cancellation the partial Result is returned along with the error.
func Run(ctx context.Context, r *repo.Repository, tree blob.ID, opt Options) (*Result, error) {
	if opt.Target == "" {
		return nil, errors.New("restore: no target directory")
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU() + 1
	}
	root, err := snapshot.LoadTree(ctx, r, tree)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	sel, err := selectPaths(ctx, r, tree, opt.Include)
	if err != nil {
		return nil, err
	}
	// Only now, with every include path known to exist, touch the target.
	if err := os.MkdirAll(opt.Target, 0o700); err != nil {
		return nil, fmt.Errorf("restore %s: %w", opt.Target, err)
	}
	rootDir, err := fs.OpenDirFollow(opt.Target)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	w := newRestorer(r, opt, rootDir)

	var workers sync.WaitGroup
	for range opt.Workers {
		workers.Go(func() { w.worker(ctx) })
	}
	top := &dirJob{dir: rootDir}
	top.pending.Store(1)
	w.walk(ctx, top, root, sel)
	top.childDone(w)
	close(w.jobs)
	workers.Wait()
	rootDir.Close()

	res := &Result{Files: w.files.Load(), Dirs: w.dirs.Load(), Other: w.other.Load(), Bytes: w.bytes.Load(),
		Unchanged: w.unchanged.Load(), UnchangedBytes: w.unchangedBytes.Load()}
	w.mu.Lock()
	res.Errors = w.errs
	w.mu.Unlock()
	slices.SortStableFunc(res.Errors, func(a, b FileError) int { return strings.Compare(a.Path, b.Path) })
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("restore %s: %w", opt.Target, err)
	}
	return res, nil
}

func newRestorer(r *repo.Repository, opt Options, root *fs.Dir) *restorer {
	prog := opt.Progress
	if prog == nil {
		prog = &Progress{}
	}
	return &restorer{repo: r, opt: opt, prog: prog, target: strings.TrimRight(opt.Target, "/"), root: root,
		jobs: make(chan fileJob, 4*opt.Workers), links: map[string]*leader{}, blobs: newReadAhead(r)}
}

// selector marks the part of a tree to restore: everything below an entry
// with all set, only the named children otherwise.
type selector struct {
	all      bool
	children map[string]*selector
}

// selectPaths checks the include paths against the snapshot and builds
// their selector; nil means everything.
func selectPaths(ctx context.Context, r *repo.Repository, tree blob.ID, include []string) (*selector, error) {
	if len(include) == 0 {
		return nil, nil
	}
	top := &selector{children: map[string]*selector{}}
	everything := false
	for _, inc := range include {
		parts, err := splitInclude(inc)
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 {
			everything = true
			continue
		}
		if _, err := snapshot.FindPath(ctx, r, tree, strings.Join(parts, "/")); err != nil {
			return nil, fmt.Errorf("restore: include %q: %w", inc, err)
		}
		s := top
		for _, part := range parts {
			if s.all {
				break
			}
			c := s.children[part]
			if c == nil {
				c = &selector{children: map[string]*selector{}}
				s.children[part] = c
			}
			s = c
		}
		s.all, s.children = true, nil
	}
	if everything {
		return nil, nil
	}
	return top, nil
}

// splitInclude splits an include path into names. A leading slash is
// accepted since snapshot trees mirror absolute paths; ".." is refused
// rather than resolved, as it most likely means a mistake.
func splitInclude(inc string) ([]string, error) {
	var parts []string
	for _, p := range strings.Split(inc, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("restore: include %q: \"..\" is not allowed", inc)
		}
		if err := snapshot.ValidName(p); err != nil {
			return nil, fmt.Errorf("restore: include %q: %w", inc, err)
		}
		parts = append(parts, p)
	}
	return parts, nil
}

func joinSnap(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// display turns a snapshot path into the path written at the target.
func (w *restorer) display(p string) string {
	if p == "" {
		return w.opt.Target
	}
	return w.target + "/" + p
}

func (w *restorer) report(p string, err error) {
	w.mu.Lock()
	w.errs = append(w.errs, FileError{Path: w.display(p), Err: fs.ErrorText(err)})
	w.mu.Unlock()
}

// walk restores the entries of tree t into directory d, depth-first in
// name order, which is the order hard-link groups were recorded in.
func (w *restorer) walk(ctx context.Context, d *dirJob, t *snapshot.Tree, sel *selector) {
	for i := range t.Nodes {
		if ctx.Err() != nil {
			return
		}
		n := &t.Nodes[i]
		var sub *selector
		if sel != nil {
			s, ok := sel.children[n.Name]
			if !ok {
				continue
			}
			if !s.all {
				sub = s
			}
		}
		// DecodeTree already refuses these names; checking again keeps
		// this package safe on its own. The error names the entry; the
		// path is its directory's, as joining a bad name would mislead.
		if err := snapshot.ValidName(n.Name); err != nil {
			w.report(d.path, err)
			continue
		}
		p := joinSnap(d.path, n.Name)
		if sub != nil && n.Type != snapshot.Dir {
			w.report(p, errors.New("not a directory, but an included path lies below it"))
			continue
		}
		switch n.Type {
		case snapshot.Dir:
			w.restoreDir(ctx, d, n, p, sub)
		case snapshot.File:
			w.restoreFile(ctx, d, n, p)
		default:
			w.restoreOther(d, n, p)
		}
	}
}

func (w *restorer) restoreDir(ctx context.Context, parent *dirJob, n *snapshot.Node, p string, sel *selector) {
	dir, err := w.makeDir(parent.dir, n.Name)
	if err != nil {
		w.report(p, err)
		return
	}
	w.dirs.Add(1)
	w.prog.Dirs.Add(1)
	d := &dirJob{path: p, name: n.Name, node: n, parent: parent, dir: dir}
	d.pending.Store(1)
	parent.pending.Add(1)
	t, err := snapshot.LoadTree(ctx, w.repo, n.Subtree)
	switch {
	case err == nil:
		w.walk(ctx, d, t, sel)
	case ctx.Err() == nil:
		w.report(p, fmt.Errorf("contents not restored: %w", err))
	}
	d.childDone(w)
}

// makeDir creates (or, if it exists, merges into) directory name and
// opens it.
func (w *restorer) makeDir(parent *fs.Dir, name string) (*fs.Dir, error) {
	err := parent.Mkdir(name, 0o700)
	if errors.Is(err, fs.ErrExist) {
		var st fs.Stat
		if st, err = parent.Lstat(name); err == nil {
			switch {
			case st.IsDir():
				// merge
			case !w.opt.Overwrite:
				return nil, errExists
			default:
				if err = parent.Remove(name); err == nil {
					err = parent.Mkdir(name, 0o700)
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	d, err := parent.OpenDir(name)
	if err != nil {
		return nil, err
	}
	// A directory merged into (or made under an odd umask) may be closed
	// to us; it gets its final mode once its contents are restored.
	if st, err := d.Stat(); err == nil && st.Mode&0o700 != 0o700 && int(st.UID) == os.Geteuid() {
		_ = d.Chmod(st.Mode&0o7777 | 0o700)
	}
	return d, nil
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
	if err := w.setMeta(d.parent.dir, d.name, d.dir, d.node); err != nil {
		w.report(d.path, err)
	}
	d.dir.Close()
	d.parent.childDone(w)
}

// linkKey names the hard-link group of a file node, "" for none.
func linkKey(n *snapshot.Node, p string) string {
	switch {
	case n.HardLink != "":
		return n.HardLink
	case n.MultiLink:
		return p
	}
	return ""
}

// restoreFile creates the file (so existing entries are dealt with in walk
// order) and hands it to a worker, or queues a hard link to its group's
// leader.
func (w *restorer) restoreFile(ctx context.Context, d *dirJob, n *snapshot.Node, p string) {
	j := fileJob{dir: d, node: n, path: p}
	key := linkKey(n, p)
	if ld := w.links[key]; ld != nil {
		j.linkTo = ld
	} else {
		f, st, existing, err := w.createOrOpen(d.dir, n)
		if err != nil {
			w.report(p, err)
			return
		}
		j.f, j.existing, j.existingStat = f, existing, st
		if key != "" {
			j.lead = &leader{dir: d, path: p, done: make(chan struct{})}
			w.links[key] = j.lead
		}
	}
	d.pending.Add(1)
	select {
	case w.jobs <- j:
	case <-ctx.Done():
		w.abandon(j)
		d.pending.Add(-1) // the walker still holds d
	}
}

// createOrOpen creates the file for n or, when a regular file of n's size
// is in its place, opens that for reading (existing set) so that a worker
// can tell whether it already holds n's content. Anything else in the way
// is dealt with as place does. The file is opened without following a
// symlink, and checked to be the one just looked at.
func (w *restorer) createOrOpen(dir *fs.Dir, n *snapshot.Node) (f *fs.File, st fs.Stat, existing bool, err error) {
	f, err = dir.CreateFile(n.Name, 0o600)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return f, fs.Stat{}, false, err
	}
	if st, err = dir.Lstat(n.Name); err == nil && st.IsRegular() && uint64(st.Size) == n.Size {
		if f, err = dir.OpenFile(n.Name); err == nil {
			fst, err := f.Stat()
			if err == nil && fst.IsRegular() && fst.Dev == st.Dev && fst.Ino == st.Ino && fst.Size == st.Size {
				return f, fst, true, nil
			}
			f.Close()
		}
		// Unreadable, or replaced meanwhile: a file that cannot be
		// compared is a different one.
	}
	f, err = w.createFile(dir, n.Name)
	return f, fs.Stat{}, false, err
}

func (w *restorer) createFile(dir *fs.Dir, name string) (*fs.File, error) {
	var f *fs.File
	err := w.place(dir, name, "create file", func() error {
		var err error
		f, err = dir.CreateFile(name, 0o600)
		return err
	})
	return f, err
}

// place runs create for name in dir; the errors of create name the
// operation (op) themselves. If something is there already it is removed
// (not followed) and create retried when Overwrite allows it; directories
// are never removed.
func (w *restorer) place(dir *fs.Dir, name, op string, create func() error) error {
	err := create()
	if err == nil || !errors.Is(err, fs.ErrExist) {
		return err
	}
	st, err := dir.Lstat(name)
	if err != nil {
		return fmt.Errorf("%s: inspect existing entry: %w", op, err)
	}
	if st.IsDir() {
		return errIsDir
	}
	if !w.opt.Overwrite {
		return errExists
	}
	if err := dir.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: remove existing entry: %w", op, err)
	}
	return create()
}

// abandon undoes a job that will not run: an empty file is not the
// snapshot's content, so it goes; a file that was there stays.
func (w *restorer) abandon(j fileJob) {
	if j.f != nil {
		j.f.Close()
		if !j.existing {
			j.dir.dir.Remove(j.node.Name)
		}
	}
	if j.lead != nil {
		close(j.lead.done)
	}
}

func (w *restorer) worker(ctx context.Context) {
	for j := range w.jobs {
		switch {
		case ctx.Err() != nil:
			w.abandon(j)
		case j.linkTo != nil:
			w.linkFile(ctx, j)
		default:
			w.writeFile(ctx, j)
		}
		j.dir.childDone(w)
	}
}

// writeFile fills the file the walker created and sets its metadata. On
// failure the file is removed: a restore never leaves wrong content behind.
func (w *restorer) writeFile(ctx context.Context, j fileJob) {
	n := j.node
	ok := false
	if j.lead != nil {
		defer func() {
			j.lead.ok = ok
			close(j.lead.done)
		}()
	}
	if j.existing {
		keep, err := w.keepExisting(ctx, j)
		if keep || err != nil {
			if err != nil && ctx.Err() == nil {
				w.report(j.path, err)
			}
			ok = keep
			return
		}
		// Different content, and Overwrite: replace it.
		if j.f, err = w.createFile(j.dir.dir, n.Name); err != nil {
			w.report(j.path, err)
			return
		}
		j.existing = false
	}
	err := w.writeContent(ctx, j.f, n)
	if err == nil && j.lead != nil {
		var st fs.Stat
		if st, err = j.f.Stat(); err == nil {
			j.lead.dev, j.lead.ino = st.Dev, st.Ino
		}
	}
	if err != nil {
		j.f.Close()
		if uerr := j.dir.dir.Remove(n.Name); uerr != nil && !errors.Is(uerr, fs.ErrNotExist) {
			err = fmt.Errorf("%w; removing the incomplete file failed: %w", err, uerr)
		}
		if ctx.Err() == nil {
			w.report(j.path, err)
		}
		return
	}
	metaErr := w.setMeta(j.dir.dir, n.Name, j.f, n)
	if err := j.f.Close(); err != nil {
		metaErr = errors.Join(metaErr, err)
	}
	if metaErr != nil {
		w.report(j.path, metaErr)
	}
	ok = true
	w.files.Add(1)
	w.bytes.Add(n.Size)
	w.prog.Files.Add(1)
}

var zeros [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeros))
		if !bytes.Equal(b[:k], zeros[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}

// writeContent writes n's chunks in order into f, a file just created
// (empty). All-zero chunks are skipped and the size set with ftruncate at
// the end, which leaves holes where the source most likely had them; a
// file whose last chunk was written needs no ftruncate (most files: one
// system call fewer a file).
func (w *restorer) writeContent(ctx context.Context, f *fs.File, n *snapshot.Node) error {
	var off, end uint64
	for _, id := range n.Content {
		data, err := w.blobs.load(ctx, id)
		if err != nil {
			return fmt.Errorf("load content: %w", err)
		}
		if off+uint64(len(data)) > n.Size {
			return fmt.Errorf("content exceeds the recorded size %d: %w", n.Size, repo.ErrCorrupt)
		}
		if !isZero(data) {
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				return err
			}
			end = off + uint64(len(data))
		}
		off += uint64(len(data))
		w.prog.Bytes.Add(uint64(len(data)))
	}
	if off != n.Size {
		return fmt.Errorf("content is %d bytes, the recorded size is %d: %w", off, n.Size, repo.ErrCorrupt)
	}
	if end == off {
		return nil
	}
	return f.Truncate(int64(off))
}

// keepExisting decides about the file that was in j's place (and closes
// it): when it holds the snapshot's content it is kept, its metadata set
// and counted as unchanged (keep true, and it becomes the leader of its
// hard-link group); when it differs, an error says it was not overwritten,
// unless Overwrite asks the caller to replace it (keep and err nil).
func (w *restorer) keepExisting(ctx context.Context, j fileJob) (keep bool, err error) {
	n := j.node
	same, cerr := w.sameContent(ctx, j.f, n)
	j.f.Close()
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case same:
		// By name, not through the descriptor: it was opened for reading,
		// and on Windows that handle may not set attributes. The fs calls
		// do not follow symlinks.
		if err := w.setMeta(j.dir.dir, n.Name, nil, n); err != nil {
			w.report(j.path, err)
		}
		if j.lead != nil {
			j.lead.dev, j.lead.ino = j.existingStat.Dev, j.existingStat.Ino
		}
		w.unchanged.Add(1)
		w.unchangedBytes.Add(n.Size)
		return true, nil
	case w.opt.Overwrite:
		return false, nil
	case cerr != nil:
		return false, fmt.Errorf("%w; comparing it with the snapshot failed: %w", errExists, cerr)
	}
	return false, errExists
}

// sameContent reports whether f, of n's size, holds n's content. It reads
// the file in the snapshot's chunks (their lengths from the index) and
// compares their keyed hashes with the chunk IDs, so nothing is
// downloaded. A chunk the index does not know makes the file count as
// different.
func (w *restorer) sameContent(ctx context.Context, f *fs.File, n *snapshot.Node) (bool, error) {
	var buf []byte
	var off uint64
	for _, id := range n.Content {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		loc, ok := w.repo.Index().Lookup(id)
		if !ok || loc.Type != blob.Data || off+uint64(loc.RawLen) > n.Size {
			return false, nil
		}
		size := int(loc.RawLen)
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		if _, err := io.ReadFull(f, buf[:size]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return false, nil // shrunk meanwhile
			}
			return false, err
		}
		if w.repo.Key().ID(buf[:size]) != id {
			return false, nil
		}
		off += uint64(size)
	}
	if off != n.Size {
		return false, nil
	}
	// Grown meanwhile?
	var one [1]byte
	if k, err := f.Read(one[:]); k > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		return false, err
	}
	return true, nil
}

// linkFile waits for the group's leader and links to it. If the leader
// failed, or cannot be linked to (too many links, another filesystem
// mounted inside the target), the content is written as a separate file.
func (w *restorer) linkFile(ctx context.Context, j fileJob) {
	ld := j.linkTo
	select {
	case <-ld.done:
	case <-ctx.Done():
		return
	}
	if ld.ok {
		// Linked already (restored before into the same place)?
		if st, err := j.dir.dir.Lstat(j.node.Name); err == nil && st.IsRegular() && st.Dev == ld.dev && st.Ino == ld.ino {
			w.unchanged.Add(1)
			w.unchangedBytes.Add(j.node.Size)
			return
		}
		err := w.link(ld, j)
		if err == nil {
			w.files.Add(1)
			w.bytes.Add(j.node.Size)
			w.prog.Files.Add(1)
			w.prog.Bytes.Add(j.node.Size)
			return
		}
		if errors.Is(err, errExists) || errors.Is(err, errIsDir) {
			w.report(j.path, err)
			return
		}
	}
	f, st, existing, err := w.createOrOpen(j.dir.dir, j.node)
	if err != nil {
		w.report(j.path, err)
		return
	}
	j.f, j.existing, j.existingStat, j.linkTo = f, existing, st, nil
	w.writeFile(ctx, j)
}

// link creates j's entry as a hard link to the leader, after checking the
// leader's name still holds the inode that was written.
func (w *restorer) link(ld *leader, j fileJob) error {
	olddir := j.dir.dir
	if ld.dir != j.dir {
		// The leader's directory may be done and closed by now: open it
		// again from the target, one component at a time.
		d, err := w.root.OpenDirPath(path.Dir(ld.path))
		if err != nil {
			return fmt.Errorf("open directory of %s: %w", w.display(ld.path), err)
		}
		defer d.Close()
		olddir = d
	}
	oldname := path.Base(ld.path)
	st, err := olddir.Lstat(oldname)
	if err != nil {
		return fmt.Errorf("stat %s: %w", w.display(ld.path), err)
	}
	if st.Dev != ld.dev || st.Ino != ld.ino {
		return fmt.Errorf("%s was replaced during the restore", w.display(ld.path))
	}
	return w.place(j.dir.dir, j.node.Name, "link", func() error {
		return fs.Link(olddir, oldname, j.dir.dir, j.node.Name)
	})
}

// restoreOther creates a symlink, fifo, socket or device node.
func (w *restorer) restoreOther(d *dirJob, n *snapshot.Node, p string) {
	mknod := func(typ uint32, dev uint64) func() error {
		return func() error { return d.dir.Mknod(n.Name, typ|0o600, dev) }
	}
	var create func() error
	op := "create " + n.Type.String()
	switch n.Type {
	case snapshot.Symlink:
		create = func() error { return d.dir.Symlink(n.Target, n.Name) }
	case snapshot.Fifo:
		create = mknod(fs.TypeFifo, 0)
	case snapshot.Socket:
		create = mknod(fs.TypeSocket, 0)
	case snapshot.CharDev:
		create = mknod(fs.TypeCharDev, n.Rdev)
	case snapshot.BlockDev:
		create = mknod(fs.TypeBlockDev, n.Rdev)
	default:
		w.report(p, fmt.Errorf("unknown entry type %s", n.Type))
		return
	}
	err := create()
	if errors.Is(err, fs.ErrExist) && sameEntry(d.dir, n) {
		// Restored before into the same place: keep it, as files with the
		// snapshot's content are kept.
		if err := w.setMeta(d.dir, n.Name, nil, n); err != nil {
			w.report(p, err)
		}
		w.unchanged.Add(1)
		return
	}
	if err != nil {
		err = w.place(d.dir, n.Name, op, create)
	}
	if err != nil {
		if (n.Type == snapshot.CharDev || n.Type == snapshot.BlockDev) && errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("%w (creating devices needs root)", err)
		}
		w.report(p, err)
		return
	}
	if err := w.setMeta(d.dir, n.Name, nil, n); err != nil {
		w.report(p, err)
	}
	w.other.Add(1)
}

// sameEntry reports whether the entry name in dir is already what n
// describes: a symlink with n's target, a fifo, a socket, a device with
// n's number. Nothing is followed.
func sameEntry(dir *fs.Dir, n *snapshot.Node) bool {
	st, err := dir.Lstat(n.Name)
	if err != nil {
		return false
	}
	switch n.Type {
	case snapshot.Symlink:
		if !st.IsSymlink() {
			return false
		}
		target, err := dir.Readlink(n.Name)
		return err == nil && target == n.Target
	case snapshot.Fifo:
		return st.Type() == fs.TypeFifo
	case snapshot.Socket:
		return st.Type() == fs.TypeSocket
	case snapshot.CharDev:
		return st.Type() == fs.TypeCharDev && st.Rdev == n.Rdev
	case snapshot.BlockDev:
		return st.Type() == fs.TypeBlockDev && st.Rdev == n.Rdev
	}
	return false
}

// openEntry is an entry open while its metadata is set: a restored file or
// directory. Going through it rather than its name saves path lookups and
// cannot be redirected.
type openEntry interface {
	Chown(uid, gid uint32) error
	SetXattr(x fs.Xattr) error
	Chmod(mode uint32) error
}

// setMeta restores owner, xattrs, mode and mtime of name in dir, through
// self (the entry itself) when it is open. The order matters: chown clears
// setuid/setgid bits and file capabilities, and user xattrs need write
// permission, so the mode comes after both; the mtime comes last.
func (w *restorer) setMeta(dir *fs.Dir, name string, self openEntry, n *snapshot.Node) error {
	var errs []error
	if w.opt.Owners {
		var err error
		if self != nil {
			err = self.Chown(n.UID, n.GID)
		} else {
			err = dir.Lchown(name, n.UID, n.GID)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, x := range n.Xattrs {
		var err error
		if self != nil {
			err = self.SetXattr(fs.Xattr{Name: x.Name, Value: x.Value})
		} else {
			err = dir.Lsetxattr(name, fs.Xattr{Name: x.Name, Value: x.Value})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n.Type != snapshot.Symlink { // symlink modes mean nothing on Linux
		mode := n.Mode & 0o7777
		var err error
		if self != nil {
			err = self.Chmod(mode)
		} else {
			err = dir.Lchmod(name, mode)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := dir.SetMtime(name, n.MTime); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("restore metadata: %w", errors.Join(errs...))
}
