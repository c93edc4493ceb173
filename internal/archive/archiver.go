package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
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
	// StatSink, if set, receives stat cache rows in batches while the run
	// goes on, instead of holding every directory's rows until it ends;
	// the caller stages them until the snapshot is saved. Rows not yet
	// passed on are in Result.StatUpdates.
	StatSink func([]state.DirStatsUpdate) error
	// CheckStored: a file taken from the parent must have every blob in
	// the index, or it is read again (after a repair dropped lost data).
	CheckStored bool
	// Links, in a journal scan, are the hard-linked inodes whose nodes the
	// scan may rebuild: every directory that held a name of one in the
	// parent snapshot is in Changed (or below ChangedTrees), and so is
	// every name made since, so all its names are met in depth-first
	// order as a full scan meets them. True: the directories that held
	// its names are known (the set's hard-link records, or the stat
	// cache); false: neither had it and the stat cache is not known to
	// describe the parent whole, so the scan must meet as many names as
	// it has links (else NeedFullScanError). A changed hard-linked file
	// not in Links ends the scan with NeedLinksError, naming what the
	// caller must add.
	Links map[state.DevIno]bool
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
	// StatHoles: some directory got no stat cache row recorded with its
	// new tree (rebuilt from the parent without its records), so the stat
	// cache does not describe every entry of this snapshot.
	StatHoles bool
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
	links map[state.DevIno]string
	// journalScan: only the directories a change journal reported are
	// visited.
	journalScan bool
	// Hard links of a journal scan, walker goroutine only: linkMissing
	// holds changed hard-linked inodes not in Options.Links (with a path,
	// for the message); linkSeen and linkNlink count the names met and
	// the links of the inodes Options.Links has as false.
	linkMissing map[state.DevIno]string
	linkSeen    map[state.DevIno]int
	linkNlink   map[state.DevIno]uint64

	mu      sync.Mutex
	errs    []FileError
	updates []state.DirStatsUpdate
	// sinkFailed: Options.StatSink failed once and is not used again.
	sinkFailed bool
	inodes     map[string][]state.DevIno

	statHoles                              atomic.Bool
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
		links: map[state.DevIno]string{}, linkMissing: map[state.DevIno]string{}, linkSeen: map[state.DevIno]int{}, linkNlink: map[state.DevIno]uint64{}}

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
	if err := a.linksComplete(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	res.Errors = a.errs
	res.StatUpdates = a.updates
	res.Links, res.LinksFull, res.StatHoles = a.inodes, !a.journalScan, a.statHoles.Load()
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
