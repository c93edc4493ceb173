package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/chunker"
	"github.com/tidemark/tidemark/internal/fs"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/snapshot"
	"github.com/tidemark/tidemark/internal/state"
)

// StatCache is the read side of the local stat cache.
type StatCache interface {
	DirStats(set []byte, path string) (blob.ID, []byte, bool, error)
}

// Options configure one archive run.
type Options struct {
	// Roots are absolute, clean paths; none may contain another.
	Roots         []string
	Excludes      *scan.Excluder
	OneFileSystem bool
	// ParentTree is the root tree of the parent snapshot (Null for none).
	ParentTree blob.ID
	// Stats and StatSet give the stat cache rows recorded for this backup
	// set; without them every file is read.
	Stats   StatCache
	StatSet []byte
	// ReadAll reads every file even when its metadata is unchanged.
	ReadAll bool
	// Workers is the number of file readers (default: CPUs + 1).
	Workers int
	// Progress, if set, is updated as the backup proceeds.
	Progress *Progress
	// Changed, when not nil, makes this a journal scan: only these
	// directories (absolute paths) are listed, with whatever is new below
	// them; every other subtree is taken from ParentTree by ID. Set it only
	// when a change journal proves the list complete.
	Changed []string
	// ChangedTrees are directories to scan whole in a journal scan
	// (created, moved in, or changed unseen below).
	ChangedTrees []string
	// RacyWindow: a file whose ctime is this close to the moment it was
	// read is read again next time, since a write in the same timestamp
	// tick would not change its ctime. Default 1s, which also covers
	// coarse-grained and skewed (network) filesystem clocks.
	RacyWindow time.Duration
}

// Progress counters, safe to read concurrently.
type Progress struct {
	Files     atomic.Uint64
	Dirs      atomic.Uint64
	Bytes     atomic.Uint64 // size of files processed (read or not)
	BytesRead atomic.Uint64
	Errors    atomic.Uint64
	Current   atomic.Value // string: a path being worked on
}

// FileError is a problem with one path that did not stop the backup.
type FileError struct {
	Path string `json:"path"`
	Err  string `json:"error"`
	// Warning marks problems that did not leave the entry out (for example
	// a file that changed while it was read).
	Warning bool `json:"warning,omitempty"`
}

// Result is the outcome of a run.
type Result struct {
	Tree    blob.ID
	Totals  snapshot.Aggregates
	Summary snapshot.Summary
	Errors  []FileError
	// StatUpdates must be written to the stat cache once the snapshot is
	// saved.
	StatUpdates []state.DirStatsUpdate
	// Links lists, per directory that was listed, its multiply-linked
	// inodes; LinksFull says every directory was listed (a full scan), so
	// records of other directories are obsolete.
	Links     map[string][]state.DevIno
	LinksFull bool
}

type archiver struct {
	repo *repo.Repository
	opt  Options
	prog *Progress

	ctx context.Context
	// storeCtx is the caller's context: uploads started by the repository
	// outlive this run (Flush waits for them), so they must not be tied to
	// ctx, which is cancelled when the run returns.
	storeCtx context.Context
	jobs     chan fileJob
	prefetch chan prefetchTask
	cancel   context.CancelCauseFunc

	// links maps (dev, ino) of multiply-linked files to the snapshot path
	// of their first occurrence; only the walker goroutine uses it.
	links map[[2]uint64]string
	// journalScan: only the directories a change journal reported are
	// visited.
	journalScan bool

	mu      sync.Mutex
	errs    []FileError
	updates []state.DirStatsUpdate
	inodes  map[string][]state.DevIno

	filesNew, filesChanged, filesUnchanged atomic.Uint64
	dirsNew, dirsChanged, dirsUnchanged    atomic.Uint64
}

type fileJob struct {
	dir *dirJob
	idx int
	st  fs.Stat
}

// dirJob is one directory being archived.
type dirJob struct {
	path     string // absolute path
	snapPath string // path in the snapshot, "" for the root
	// dir is the open directory, nil until opened; dirRefs counts its
	// users (the walker, file jobs, prefetches), the last one closes it.
	dir     *fs.Dir
	dirRefs atomic.Int32
	dev     uint64 // device of the root this directory belongs to
	// only, for the directories above the roots, lists the entries to
	// include and, per entry, whether it is a root (scanned fully) or
	// another level above one.
	only map[string]*vnode

	nodes []snapshot.Node
	recs  []scan.StatRecord
	// pending counts unfinished children plus one for the listing.
	pending atomic.Int32

	oldTree    blob.ID
	rowTree    blob.ID
	rowRaw     []byte
	hasRow     bool
	parent     *dirJob
	idx        int
	onDone     func(blob.ID, snapshot.Aggregates)
	wasInOldTr bool

	// inodes of multiply-linked files found while listing this directory.
	inodes []state.DevIno
	// listed: the directory was listed (not rebuilt from the parent).
	listed bool

	// journal marks a journal scan below this directory: only directories
	// in dirty are visited; ancestor means this one is not listed itself.
	journal  bool
	dirty    *dirtyNode
	ancestor bool
	// recHoles: the stat records of some entries are unknown, so no stat
	// cache row is written.
	recHoles bool

	// listing, if prefetched, is this directory's; prefetched holds the
	// listings of its subdirectories that are under way.
	listing    *listing
	prefetched map[string]*listing
}

// vnode is a level of the path above or at a root.
type vnode struct {
	root     bool
	children map[string]*vnode
}

// Run archives opt.Roots into r. The caller flushes the repository and
// saves the snapshot.
func Run(ctx context.Context, r *repo.Repository, opt Options) (*Result, error) {
	if len(opt.Roots) == 0 {
		return nil, errors.New("no paths to back up")
	}
	top := &vnode{children: map[string]*vnode{}}
	for _, root := range opt.Roots {
		if !path.IsAbs(root) || path.Clean(root) != root || root == "/" && len(opt.Roots) > 1 {
			return nil, fmt.Errorf("backup root %q must be an absolute, clean path", root)
		}
		if root == "/" {
			top.root = true
			continue
		}
		v := top
		for _, part := range strings.Split(root[1:], "/") {
			if v.root {
				break
			}
			c := v.children[part]
			if c == nil {
				c = &vnode{children: map[string]*vnode{}}
				v.children[part] = c
			}
			v = c
		}
		v.root, v.children = true, nil
	}
	if opt.RacyWindow <= 0 {
		opt.RacyWindow = time.Second
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU() + 1
	}
	prog := opt.Progress
	if prog == nil {
		prog = &Progress{}
	}
	storeCtx := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a := &archiver{ctx: ctx, storeCtx: storeCtx, repo: r, opt: opt, prog: prog, jobs: make(chan fileJob, 4*opt.Workers), cancel: cancel,
		links: map[[2]uint64]string{}}

	a.prefetch = make(chan prefetchTask, 256)
	var prefetchers sync.WaitGroup
	for i := 0; i < runtime.NumCPU(); i++ {
		prefetchers.Add(1)
		go func() {
			defer prefetchers.Done()
			a.prefetcher(ctx)
		}()
	}
	defer func() {
		close(a.prefetch)
		prefetchers.Wait()
	}()

	var workers sync.WaitGroup
	for i := 0; i < opt.Workers; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			a.worker(ctx)
		}()
	}

	res := &Result{}
	var rootDone atomic.Bool
	rootDir, err := fs.OpenDir("/")
	if err != nil {
		close(a.jobs)
		workers.Wait()
		return nil, err
	}
	root := &dirJob{path: "/", dir: rootDir, oldTree: opt.ParentTree, wasInOldTr: !opt.ParentTree.IsNull(), onDone: func(id blob.ID, agg snapshot.Aggregates) {
		res.Tree, res.Totals = id, agg
		rootDone.Store(true)
	}}
	if !top.root {
		root.only = top.children
	}
	if opt.Changed != nil && !opt.ParentTree.IsNull() {
		root.journal, root.dirty = true, buildDirty(opt.Changed, opt.ChangedTrees)
		a.journalScan = true
	}
	if st, err := rootDir.Stat(); err == nil {
		root.dev = st.Dev
	}
	root.dirRefs.Store(1)
	root.pending.Store(1)
	if err := a.checkRoots(); err != nil {
		rootDir.Close()
		close(a.jobs)
		workers.Wait()
		return nil, err
	}
	a.walk(ctx, root)
	close(a.jobs)
	workers.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if !rootDone.Load() {
		return nil, errors.New("internal error: archive finished without a root tree")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	res.Errors = a.errs
	res.StatUpdates = a.updates
	res.Links, res.LinksFull = a.inodes, !a.journalScan
	res.Summary = snapshot.Summary{
		FilesNew: a.filesNew.Load(), FilesChanged: a.filesChanged.Load(), FilesUnchanged: a.filesUnchanged.Load(),
		DirsNew: a.dirsNew.Load(), DirsChanged: a.dirsChanged.Load(), DirsUnchanged: a.dirsUnchanged.Load(),
		BytesRead: prog.BytesRead.Load(),
	}
	for _, e := range a.errs {
		if !e.Warning {
			res.Summary.Errors++
		}
	}
	return res, nil
}

// checkRoots fails early, with the path named, when a root is missing.
func (a *archiver) checkRoots() error {
	for _, root := range a.opt.Roots {
		if _, err := os.Lstat(root); err != nil {
			return fmt.Errorf("backup root %s: %w", root, err)
		}
	}
	return nil
}

func (a *archiver) report(p string, err error, warning bool) {
	if !warning {
		a.prog.Errors.Add(1)
	}
	a.mu.Lock()
	a.errs = append(a.errs, FileError{Path: p, Err: fs.ErrorText(err), Warning: warning})
	a.mu.Unlock()
}

func (a *archiver) fatal(err error) { a.cancel(err) }

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

func joinSnap(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func nodeType(st fs.Stat) snapshot.NodeType {
	switch st.Type() {
	case fs.TypeRegular:
		return snapshot.File
	case fs.TypeDir:
		return snapshot.Dir
	case fs.TypeSymlink:
		return snapshot.Symlink
	case fs.TypeBlockDev:
		return snapshot.BlockDev
	case fs.TypeCharDev:
		return snapshot.CharDev
	case fs.TypeFifo:
		return snapshot.Fifo
	case fs.TypeSocket:
		return snapshot.Socket
	}
	return 0
}

// walk lists d, handles every entry that needs no reading, hands files to
// the workers and recurses into subdirectories, depth first. It runs on one
// goroutine, which makes the order of first occurrences of hard links (and
// so the snapshot) deterministic.
func (a *archiver) walk(ctx context.Context, d *dirJob) {
	defer d.childDone(a)
	defer d.releaseDir()
	defer d.dropPrefetched()

	if d.ancestor {
		err := a.walkAncestor(ctx, d)
		if err == nil {
			return
		}
		if !errors.Is(err, errRelist) {
			a.fatal(err)
			return
		}
		// The way down changed under us: list this directory after all.
		d.ancestor, d.listing = false, nil
	}
	l := d.listing
	if l == nil {
		l = &listing{dir: d.dir}
		a.fill(ctx, l, d.path, d.only, d.oldTree)
	}
	d.listing = nil
	names := l.names
	if l.listErr != nil {
		a.report(d.path, l.listErr, false)
	}
	a.prog.Dirs.Add(1)
	a.prog.Current.Store(d.path)

	var old *snapshot.Tree
	var oldRecs []scan.StatRecord
	if !d.oldTree.IsNull() {
		if l.oldErr != nil {
			if ctx.Err() != nil {
				return
			}
			// The parent is only an optimization: read everything here.
			a.report(d.path, fmt.Errorf("parent snapshot unusable here, reading all files: %w", l.oldErr), true)
		} else {
			old = l.old
		}
		if l.row.err != nil {
			a.fatal(l.row.err)
			return
		}
		d.rowTree, d.rowRaw, d.hasRow = l.row.tree, l.row.raw, l.row.ok
		oldRecs = l.recs
	}
	if a.journalScan && old != nil {
		if err := a.checkRemovedLinks(ctx, d, l, old, oldRecs); err != nil {
			a.fatal(err)
			return
		}
	}
	d.listed = true
	a.schedulePrefetch(d, l)

	d.nodes = make([]snapshot.Node, len(names))
	d.recs = make([]scan.StatRecord, len(names))
	for i, name := range names {
		if ctx.Err() != nil {
			return
		}
		p := joinPath(d.path, name)
		var v *vnode
		if d.only != nil {
			v = d.only[name]
		}
		st, err := l.stats[i], l.statErrs[i]
		if err == errExcluded {
			continue
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				a.report(p, errors.New("vanished before it could be read"), true)
			} else {
				a.report(p, err, false)
			}
			continue
		}
		typ := nodeType(st)
		if v != nil && !v.root && typ != snapshot.Dir {
			a.report(p, errors.New("is not a directory, but a backup root lies below it"), false)
			continue
		}
		if typ == 0 {
			a.report(p, fmt.Errorf("unknown file type %#o", st.Type()), false)
			continue
		}
		n := snapshot.Node{Name: name, Type: typ, Mode: st.Mode & 0o7777, UID: st.UID, GID: st.GID, MTime: st.MTime}
		rec := scan.StatRecord{Name: name, Ino: st.Ino, Dev: st.Dev, CTime: st.CTime}
		var on *snapshot.Node
		if old != nil {
			on = old.Find(name)
		}
		same := false
		if on != nil && on.Type == typ && !a.opt.ReadAll {
			if or := scan.FindStatRecord(oldRecs, name); or != nil && or.CTime != 0 &&
				or.CTime == st.CTime && or.Ino == st.Ino && or.Dev == st.Dev && on.Mode == n.Mode && on.UID == n.UID && on.GID == n.GID {
				same = true
			}
		}
		if typ != snapshot.File {
			// The ctime covers xattrs and symlink targets; only read them
			// when it changed.
			if same {
				n.Xattrs = on.Xattrs
			} else if xs, err := d.dir.Xattrs(name); err != nil {
				a.report(p, err, true)
			} else {
				n.Xattrs = convertXattrs(xs)
			}
		}
		switch typ {
		case snapshot.File:
			n.Size = uint64(st.Size)
			if st.Nlink > 1 {
				d.inodes = append(d.inodes, state.DevIno{Dev: st.Dev, Ino: st.Ino})
				if a.journalScan {
					// An unchanged inode (same ctime: no link added or
					// removed, nothing written) keeps its node, first-link
					// path included. A changed one concerns its other links,
					// which may sit in directories this scan does not visit.
					if same && on.MultiLink && on.Size == n.Size && on.MTime == n.MTime {
						d.nodes[i], d.recs[i] = *on, rec
						a.filesUnchanged.Add(1)
						a.prog.Files.Add(1)
						a.prog.Bytes.Add(n.Size)
						continue
					}
					a.fatal(&NeedFullScanError{Reason: "hard-linked file changed: " + p})
					return
				}
				n.MultiLink = true
				key := [2]uint64{st.Dev, st.Ino}
				if first, ok := a.links[key]; ok {
					n.HardLink = first
				} else {
					a.links[key] = joinSnap(d.snapPath, name)
				}
			}
			if same && on.Size == n.Size && on.MTime == n.MTime {
				n.Content, n.Xattrs = on.Content, on.Xattrs
				d.nodes[i], d.recs[i] = n, rec
				a.filesUnchanged.Add(1)
				a.prog.Files.Add(1)
				a.prog.Bytes.Add(n.Size)
				continue
			}
			if on != nil && on.Type == snapshot.File {
				a.filesChanged.Add(1)
			} else {
				a.filesNew.Add(1)
			}
			d.nodes[i], d.recs[i] = n, rec
			d.pending.Add(1)
			d.dirRefs.Add(1)
			select {
			case a.jobs <- fileJob{dir: d, idx: i, st: st}:
			case <-ctx.Done():
				d.nodes[i].Type = 0
				d.releaseDir()
				d.pending.Add(-1)
				return
			}
			continue
		case snapshot.Symlink:
			if same {
				n.Target = on.Target
			} else if n.Target, err = d.dir.Readlink(name); err != nil {
				a.report(p, err, false)
				continue
			}
		case snapshot.BlockDev, snapshot.CharDev:
			n.Rdev = st.Rdev
		case snapshot.Dir:
			d.nodes[i], d.recs[i] = n, rec
			plan, dt := a.planSubdir(d, name, on, st, scan.FindStatRecord(oldRecs, name))
			if plan == planReuse {
				d.nodes[i].Subtree, d.nodes[i].Agg = on.Subtree, on.Agg
				a.dirsUnchanged.Add(1)
				continue
			}
			a.walkSubdir(ctx, d, i, name, p, st, on, v, plan, dt)
			continue
		}
		d.nodes[i], d.recs[i] = n, rec
	}
}

func (a *archiver) walkSubdir(ctx context.Context, d *dirJob, i int, name, p string, st fs.Stat, on *snapshot.Node, v *vnode, plan subdirPlan, dt *dirtyNode) {
	sub := &dirJob{path: p, snapPath: joinSnap(d.snapPath, name), parent: d, idx: i, dev: d.dev,
		journal: plan == planList || plan == planAncestor, dirty: dt, ancestor: plan == planAncestor}
	if on != nil && on.Type == snapshot.Dir {
		sub.oldTree = on.Subtree
		sub.wasInOldTr = true
	}
	if v != nil && !v.root {
		sub.only = v.children
	}
	if v != nil && v.root {
		sub.dev = st.Dev
	}
	d.pending.Add(1)
	sub.pending.Store(1)
	if d.only == nil && a.opt.OneFileSystem && st.Dev != d.dev {
		// A mount point: keep the directory itself, not what is mounted.
		sub.childDone(a)
		return
	}
	var dir *fs.Dir
	var err error
	if pre := d.prefetched[name]; pre != nil {
		delete(d.prefetched, name)
		<-pre.done
		dir, err = pre.dir, pre.openErr
		sub.listing = pre
	} else {
		dir, err = d.dir.OpenDir(name)
	}
	if err != nil {
		a.report(p, err, false)
		sub.childDone(a)
		return
	}
	sub.dir = dir
	sub.dirRefs.Store(1)
	a.walk(ctx, sub)
}

func convertXattrs(xs []fs.Xattr) []snapshot.Xattr {
	if len(xs) == 0 {
		return nil
	}
	out := make([]snapshot.Xattr, len(xs))
	for i, x := range xs {
		out[i] = snapshot.Xattr{Name: x.Name, Value: x.Value}
	}
	return out
}

// releaseDir drops one reference to the open directory; the last one
// closes it.
func (d *dirJob) releaseDir() {
	if d.dir != nil && d.dirRefs.Add(-1) == 0 {
		d.dir.Close()
	}
}

// childDone records that one child (or the listing) finished; the last one
// saves the directory's tree.
func (d *dirJob) childDone(a *archiver) {
	if d.pending.Add(-1) != 0 {
		return
	}
	if a.ctx.Err() != nil {
		return // the run failed; its trees are not needed
	}
	a.finish(d)
}

func (a *archiver) finish(d *dirJob) {
	nodes := d.nodes[:0]
	recs := d.recs[:0]
	for i := range d.nodes {
		if d.nodes[i].Type != 0 {
			nodes = append(nodes, d.nodes[i])
			recs = append(recs, d.recs[i])
		}
	}
	tree := &snapshot.Tree{Nodes: nodes}
	id, err := snapshot.SaveTree(a.storeCtx, a.repo, tree)
	if err != nil {
		a.fatal(fmt.Errorf("save tree of %s: %w", d.path, err))
		return
	}
	agg := tree.Totals()
	switch {
	case !d.wasInOldTr:
		a.dirsNew.Add(1)
	case id == d.oldTree:
		a.dirsUnchanged.Add(1)
	default:
		a.dirsChanged.Add(1)
	}
	raw := scan.EncodeStatRecords(recs)
	if !d.recHoles && (!d.hasRow || d.rowTree != id || !bytes.Equal(d.rowRaw, raw)) {
		a.mu.Lock()
		a.updates = append(a.updates, state.DirStatsUpdate{Path: d.path, Tree: id, Entries: raw})
		a.mu.Unlock()
	}
	if d.listed && (a.journalScan || len(d.inodes) > 0) {
		a.mu.Lock()
		if a.inodes == nil {
			a.inodes = map[string][]state.DevIno{}
		}
		a.inodes[d.path] = d.inodes
		a.mu.Unlock()
	}
	d.nodes, d.recs, d.rowRaw, d.inodes = nil, nil, nil, nil
	if d.onDone != nil {
		d.onDone(id, agg)
		return
	}
	pn := &d.parent.nodes[d.idx]
	pn.Subtree, pn.Agg = id, agg
	d.parent.childDone(a)
}

// worker reads files handed over by the walker.
func (a *archiver) worker(ctx context.Context) {
	ch := a.repo.Chunker().New(nil)
	for j := range a.jobs {
		if ctx.Err() == nil {
			a.readFile(ctx, j, ch)
		} else {
			j.dir.nodes[j.idx].Type = 0
		}
		j.dir.releaseDir()
		j.dir.childDone(a)
	}
}

func (a *archiver) readFile(ctx context.Context, j fileJob, ch *chunker.Chunker) {
	d := j.dir
	n := &d.nodes[j.idx]
	rec := &d.recs[j.idx]
	p := joinPath(d.path, n.Name)
	a.prog.Current.Store(p)
	drop := func(err error, warning bool) {
		a.report(p, err, warning)
		n.Type = 0
	}
	began := time.Now()
	f, err := d.dir.OpenFile(n.Name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			drop(errors.New("vanished before it could be read"), true)
		} else {
			drop(err, false)
		}
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		drop(err, false)
		return
	}
	if !st.IsRegular() {
		drop(errors.New("was replaced by something that is not a regular file"), false)
		return
	}
	// If the file was replaced between lstat and open, describe what was
	// read.
	n.Mode, n.UID, n.GID, n.MTime = st.Mode&0o7777, st.UID, st.GID, st.MTime
	rec.Ino, rec.Dev, rec.CTime = st.Ino, st.Dev, st.CTime
	ch.Reset(f)
	var content []blob.ID
	var size uint64
	for {
		chunk, err := ch.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			drop(err, false)
			return
		}
		id := a.repo.Key().ID(chunk)
		if _, err := a.repo.SaveBlob(a.storeCtx, blob.Data, id, chunk); err != nil {
			a.fatal(fmt.Errorf("store %s: %w", p, err))
			n.Type = 0
			return
		}
		content = append(content, id)
		size += uint64(len(chunk))
		a.prog.BytesRead.Add(uint64(len(chunk)))
	}
	n.Content, n.Size = content, size
	if xs, err := d.dir.Xattrs(n.Name); err != nil {
		a.report(p, err, true)
	} else {
		n.Xattrs = convertXattrs(xs)
	}
	after, err := f.Stat()
	if err != nil || after.Size != st.Size || after.MTime != st.MTime || after.CTime != st.CTime || int64(size) != st.Size {
		a.report(p, errors.New("changed while it was read; the snapshot holds what was read and the next backup reads it again"), true)
		rec.CTime = 0
	} else if st.CTime > began.Add(-a.opt.RacyWindow).UnixNano() {
		// Changed within the timestamp granularity of our read: a later
		// write could keep the same ctime, so do not trust it next time.
		rec.CTime = 0
	}
	a.prog.Files.Add(1)
	a.prog.Bytes.Add(size)
}
