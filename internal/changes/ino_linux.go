//go:build linux

package changes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// inoMask: entry changes, metadata and content of entries, and the watched
// directory's own deletion or move. Only directories are watched
// (IN_ONLYDIR), symlinks are not followed, and events of unlinked but
// still open files are not wanted (IN_EXCL_UNLINK).
const inoMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF |
	unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK

// fileMask is what a watch on a multiply-linked file asks for: a watch on
// a file watches its inode, so it reports writes and metadata changes
// (link count included) made through any of its names, also names outside
// the roots, which no directory watch sees.
const fileMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE

var errWatchLimit = errors.New("inotify watch limit reached")

// errAliased: the directory is another name of one already watched.
var errAliased = errors.New("directory already watched under another name")

// inodeKey identifies a watched file.
type inodeKey struct{ dev, ino uint64 }

// inoSource keeps an inotify watch on every directory below its roots, on
// every existing ancestor of each root (to notice a root being created,
// deleted or replaced) and on the fences directory.
type inoSource struct {
	w    *watcher
	fd   int
	file *os.File
	act  activity

	// mu guards the fields below. The event goroutine holds it while it
	// handles the events of one read (and the walks they start); the main
	// loop only tries it (tick), so the heartbeat goes on meanwhile.
	mu      sync.Mutex
	roots   []string
	wds     map[int32]string
	paths   map[string]int32
	rootDev map[string]uint64
	nested  map[string]mountKey
	limited map[string]bool // roots that hit the watch limit
	rewalk  map[string]bool // roots to set up again after this read
	fences  []string        // fence markers seen in this read, reported after the re-walks
	// vanished: paths changed (meta or content) that were gone when the
	// event was read; unless renamed in the same read, the inode is unknown.
	vanished map[string]bool
	// files maps the watches on multiply-linked files below the roots to
	// their inodes, and back. Only such a watch sees a write through a
	// link outside the roots. (A file that gets its second link outside
	// the roots is not seen at all: no event reaches a directory watch.)
	files     map[int32]inodeKey
	fileWatch map[inodeKey]int32
	// unwatchable: multiply-linked files that could not be watched
	// (marked uncovered until removed).
	unwatchable map[string]bool
	// mountFiles maps the watches on files bind-mounted inside the roots
	// to their mount points: the file is changed through its own path
	// elsewhere, which no directory watch below the roots sees.
	mountFiles map[int32]string
	// aliased: directories below the roots found to be another name of a
	// watched directory (marked uncovered until their tree is dropped).
	aliased map[string]string
	// movedOut lists the directories moved away in this read. After the
	// read, the watches recorded at or below them are checked (revalidate):
	// a directory moved within the roots was walked again at its new path
	// by its MOVED_TO, and with RENAME_EXCHANGE two directories move both
	// ways in one read, so only watches no longer at their paths go.
	movedOut []string
	buf      []byte

	descMu sync.Mutex
	desc   []FilesystemInfo // the last description, for when mu is busy
}

func newInoSource(ctx context.Context, w *watcher, roots []string) (*inoSource, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	s := &inoSource{
		w: w, fd: fd, roots: roots, wds: map[int32]string{}, paths: map[string]int32{},
		rootDev: map[string]uint64{}, limited: map[string]bool{}, rewalk: map[string]bool{}, vanished: map[string]bool{},
		files: map[int32]inodeKey{}, fileWatch: map[inodeKey]int32{}, unwatchable: map[string]bool{}, mountFiles: map[int32]string{}, aliased: map[string]string{},
		buf: make([]byte, 256<<10), act: activity{name: "the inotify source"},
	}
	if _, err := s.addWatch(w.filt.fencesDir); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", w.filt.fencesDir, err)
	}
	// The mounts inside the roots first: the walks watch files mounted
	// there (bind mounts of files).
	mounts, err := readMountinfo()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.nested = nestedMounts(mounts, roots, w.l.dir)
	for _, r := range roots {
		s.establish(ctx, r)
		s.rootDev[r], _ = devOf(nearestExisting(r))
	}
	if err := ctx.Err(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.refreshDesc()
	s.file = os.NewFile(uintptr(fd), "inotify")
	return s, nil
}

func (s *inoSource) activity() *activity { return &s.act }

func (s *inoSource) close() {
	if s.file != nil {
		s.file.Close()
	}
}

// addWatch watches dir and records its path; the kernel returns the same
// descriptor for a directory already watched, whose path is then updated
// (it was moved). A directory that is still there under its old path as
// well is visible under two names (a bind mount): inotify reports its
// changes with one watch, which names one of them, so the other is not
// covered while both last.
func (s *inoSource) addWatch(dir string) (int32, error) {
	wd, err := unix.InotifyAddWatch(s.fd, dir, inoMask)
	if err != nil {
		return -1, err
	}
	w := int32(wd)
	if old, ok := s.wds[w]; ok && old != dir && s.paths[old] == w {
		if underAny(dir, s.roots) && sameDir(old, dir) {
			reason := fmt.Sprintf("%s is also visible as %s (a bind mount): inotify reports its changes under one name", dir, old)
			s.aliased[dir] = old
			s.w.setUncovered(dir, reason)
			s.w.gap(dir, reason)
			return w, errAliased
		}
		delete(s.paths, old)
	}
	s.wds[w] = dir
	s.paths[dir] = w
	return w, nil
}

// sameDir reports whether paths a and b lead to the same directory.
func sameDir(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sameInode(&sa, &sb)
}

// establish watches a root's existing ancestors and the root's tree.
func (s *inoSource) establish(ctx context.Context, root string) {
	for a := filepath.Dir(root); ; a = filepath.Dir(a) {
		if _, err := s.addWatch(a); err == unix.ENOSPC {
			s.limitHit(root, a)
			return
		}
		if a == "/" {
			break
		}
	}
	if fi, err := os.Lstat(root); err == nil && fi.IsDir() {
		if err := s.walk(ctx, root, root); err == nil {
			if s.limited[root] {
				delete(s.limited, root)
				s.w.clearUncovered(root)
			}
		}
	}
}

// walk watches dir and every directory below it, then records each as
// dirty: changes made before its watch existed were not seen, and listing
// it after the watch is in place closes that window. It stops with ctx's
// error when ctx is done (the watcher is stopping).
func (s *inoSource) walk(ctx context.Context, dir, root string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.act.step()
	if _, err := s.addWatch(dir); err != nil {
		switch {
		case err == errAliased:
			return nil // uncovered while it lasts; its tree is the other name's
		case err == unix.ENOSPC:
			s.limitHit(root, dir)
			return errWatchLimit
		case goneErr(err):
			return nil // gone meanwhile: its parent's event says so
		default:
			reason := fmt.Sprintf("cannot watch %s: %v", dir, err)
			s.w.setUncovered(dir, reason)
			s.w.gap(dir, reason)
			return nil
		}
	}
	f, err := os.Open(dir)
	if err == nil {
		var ents []os.DirEntry
		ents, err = f.ReadDir(-1)
		f.Close()
		if err == nil {
			return s.walkEntries(ctx, dir, root, ents)
		}
	}
	// Removed (or replaced by a file) since: the parent's event, queued
	// after the one being handled, records that.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	s.w.gap(dir, fmt.Sprintf("cannot list %s: %v", dir, err))
	return nil
}

func (s *inoSource) walkEntries(ctx context.Context, dir, root string, ents []os.DirEntry) error {
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case within(p, s.w.l.dir) && !within(s.w.filt.fencesDir, p):
			// the journal's own files and directories
		case e.IsDir():
			if err := s.walk(ctx, p, root); err != nil {
				return err
			}
		case s.isMountPoint(p):
			// A file mounted here (bind mount): changed through its
			// own path elsewhere, only a watch on it sees that.
			if err := s.watchMountFile(p, root); err != nil {
				return err
			}
		case e.Type().IsRegular():
			// A stat per file: only the link count tells which files
			// need a watch of their own.
			if _, _, n, regular, err := linkCount(p); err == nil && regular && n > 1 {
				if err := s.watchFile(p, root); err != nil {
					return err
				}
			}
		}
	}
	s.w.emit(Record{Kind: RecDirty, Path: dir})
	return nil
}

// watchFile watches the inode of the multiply-linked file at path (below
// root), unless it is watched already. The watch is placed through an
// O_PATH descriptor, so it is on the very inode whose link count was
// checked even if the name changes meanwhile. It returns errWatchLimit when
// the watch limit is reached.
func (s *inoSource) watchFile(path, root string) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // gone meanwhile: an event says so
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink < 2 {
		return nil
	}
	k := inodeKey{st.Dev, st.Ino}
	if _, ok := s.fileWatch[k]; ok {
		return nil
	}
	wd, err := unix.InotifyAddWatch(s.fd, "/proc/self/fd/"+strconv.Itoa(fd), fileMask)
	switch {
	case err == unix.ENOSPC:
		s.limitHit(root, path)
		return errWatchLimit
	case err != nil:
		// inotify needs read permission on the file. Without a watch,
		// a write through one of its links outside the roots would go
		// unseen: backups overlapping it scan fully until it is gone.
		s.unwatchable[path] = true
		s.w.setUncovered(path, fmt.Sprintf("inotify cannot watch the hard-linked file %s (%v): changes through its links outside the watched paths would go unseen", path, err))
		return nil
	}
	s.files[int32(wd)] = k
	s.fileWatch[k] = int32(wd)
	return nil
}

func (s *inoSource) isMountPoint(p string) bool {
	_, ok := s.nested[p]
	return ok
}

// watchMountFile watches the file mounted at mount point p (below root).
// It returns errWatchLimit when the watch limit is reached.
func (s *inoSource) watchMountFile(p, root string) error {
	wd, err := unix.InotifyAddWatch(s.fd, p, fileMask|unix.IN_DONT_FOLLOW)
	switch {
	case err == unix.ENOSPC:
		s.limitHit(root, p)
		return errWatchLimit
	case err != nil:
		if !goneErr(err) {
			reason := fmt.Sprintf("cannot watch the file mounted at %s: %v", p, err)
			s.w.setUncovered(p, reason)
			s.w.gap(p, reason)
		}
		return nil
	}
	s.mountFiles[int32(wd)] = p
	return nil
}

// fileEvent handles an event of a file watch: the file changed, through
// whichever name. It is recorded by inode number, which a backup matches
// against its records of multiply-linked files; the name may be outside
// every root, or one a backup of other roots holds.
func (s *inoSource) fileEvent(k inodeKey, wd int32, mask uint32) {
	if mask&unix.IN_IGNORED != 0 {
		// The file is gone (its last link removed) or unmounted.
		delete(s.files, wd)
		if s.fileWatch[k] == wd {
			delete(s.fileWatch, k)
		}
		return
	}
	if mask&fileMask != 0 {
		s.w.emit(Record{Kind: RecInode, Text: formatDevIno(k.dev, k.ino)})
	}
}

func (s *inoSource) limitHit(root, dir string) {
	if !s.limited[root] {
		s.w.gap(dir, "watch limit")
	}
	s.limited[root] = true
	s.w.setUncovered(root, fmt.Sprintf("watch limit: cannot watch %s (raise fs.inotify.max_user_watches)", dir))
}

// revalidate checks the watches recorded at or below the directories
// moved away in a read: a watch whose path now leads to no directory, or
// to another one, watches a directory moved out of the roots (or to a
// place walked under its new path) and is dropped; a path that leads to
// another directory than its watch's is watched and walked afresh (its
// changes may have gone to the old watch), and rescanned whole.
func (s *inoSource) revalidate(ctx context.Context, moved []string) {
	type watch struct {
		wd   int32
		path string
	}
	var check []watch
	for wd, path := range s.wds {
		for _, m := range moved {
			if within(path, m) && !within(s.w.filt.fencesDir, path) {
				check = append(check, watch{wd, path})
				break
			}
		}
	}
	drop := func(w watch) {
		_, _ = unix.InotifyRmWatch(s.fd, uint32(w.wd))
		delete(s.wds, w.wd)
		if s.paths[w.path] == w.wd {
			delete(s.paths, w.path)
		}
	}
	var rewalk []string
	for _, w := range check {
		if s.paths[w.path] != w.wd {
			drop(w) // its path is another watch's now
			continue
		}
		got, err := unix.InotifyAddWatch(s.fd, w.path, inoMask)
		switch {
		case err != nil:
			drop(w)
		case int32(got) != w.wd:
			drop(w)
			s.wds[int32(got)], s.paths[w.path] = w.path, int32(got)
			rewalk = append(rewalk, w.path)
		}
	}
	for _, p := range pruneNested(rewalk) {
		if r, ok := rootOf(p, s.roots); ok {
			s.w.emit(Record{Kind: RecDirty, Path: filepath.Dir(p)}, Record{Kind: RecTree, Path: p})
			_ = s.walk(ctx, p, r)
		}
	}
}

// removeTree drops the watches at and below p (not those leading to the
// fences directory).
func (s *inoSource) removeTree(p string) {
	for a := range s.aliased {
		if within(a, p) {
			delete(s.aliased, a)
			s.w.clearUncovered(a)
		}
	}
	for path, wd := range s.paths {
		if within(path, p) && !within(s.w.filt.fencesDir, path) {
			_, _ = unix.InotifyRmWatch(s.fd, uint32(wd))
			delete(s.paths, path)
			delete(s.wds, wd)
		}
	}
}

func (s *inoSource) run(ctx context.Context) error {
	for ctx.Err() == nil {
		if s.w.opt.beforeRead != nil {
			s.w.opt.beforeRead(KindInotify)
		}
		n, err := s.file.Read(s.buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("inotify read: %w", err)
		}
		if err := s.process(ctx, s.buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

// process handles the events of one read. It stops early when ctx is
// done: the watcher is stopping, and what is not recorded now belongs to
// an epoch no backup will use.
func (s *inoSource) process(ctx context.Context, buf []byte) error {
	s.act.begin("handling inotify events")
	defer s.act.end()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := parseInotifyEvents(buf, func(wd int32, mask uint32, name string) {
		if ctx.Err() != nil {
			return
		}
		if s.w.opt.beforeEvent != nil {
			s.w.opt.beforeEvent(KindInotify)
		}
		s.act.step()
		s.handle(ctx, wd, mask, name)
	})
	if ctx.Err() != nil {
		return nil
	}
	if len(s.movedOut) > 0 {
		s.revalidate(ctx, s.movedOut)
		s.movedOut = s.movedOut[:0]
	}
	var roots []string
	for r := range s.rewalk {
		roots = append(roots, r)
	}
	sort.Strings(roots)
	clear(s.rewalk)
	for _, r := range roots {
		s.removeTree(r)
		s.establish(ctx, r)
	}
	gapped := map[string]bool{}
	for p := range s.vanished {
		if r, ok := rootOf(p, s.roots); ok && !gapped[r] {
			gapped[r] = true // one record per root and read, however many files
			s.w.gap(r, "inotify lost track of a changed file (its name was gone before the change was read)")
		}
	}
	clear(s.vanished)
	// A fence read in this buffer counts only now: it claims that every
	// change before it is recorded and every later one will be, which
	// needs the watches the re-walks above placed, and what produces no
	// event (mounts, a root on another filesystem) checked.
	if len(s.fences) > 0 {
		s.checkLocked(ctx)
	}
	for _, f := range s.fences {
		s.w.sawFence(f, srcInotify)
	}
	s.fences = s.fences[:0]
	return err
}

// parseInotifyEvents decodes struct inotify_event records.
func parseInotifyEvents(buf []byte, fn func(wd int32, mask uint32, name string)) error {
	for len(buf) > 0 {
		if len(buf) < unix.SizeofInotifyEvent {
			return fmt.Errorf("inotify: %d trailing bytes", len(buf))
		}
		wd := int32(binary.NativeEndian.Uint32(buf[0:]))
		mask := binary.NativeEndian.Uint32(buf[4:])
		n := binary.NativeEndian.Uint32(buf[12:])
		if uint64(n) > uint64(len(buf)-unix.SizeofInotifyEvent) {
			return fmt.Errorf("inotify: name length %d", n)
		}
		name := cString(buf[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+int(n)])
		buf = buf[unix.SizeofInotifyEvent+int(n):]
		fn(wd, mask, name)
	}
	return nil
}

func inoOps(mask uint32) op {
	var o op
	if mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
		o |= opCreate
	}
	if mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0 {
		o |= opRemove
	}
	if mask&unix.IN_ATTRIB != 0 {
		o |= opMeta
	}
	if mask&(unix.IN_MODIFY|unix.IN_CLOSE_WRITE) != 0 {
		o |= opContent
	}
	return o
}

func (s *inoSource) handle(ctx context.Context, wd int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		s.w.gap("", "overflow")
		return
	}
	if mp, ok := s.mountFiles[wd]; ok {
		// The kernel gives one watch per inode: a mounted file that is
		// also multiply linked is handled as both.
		if mask&unix.IN_IGNORED != 0 {
			delete(s.mountFiles, wd)
		} else if o := inoOps(mask); o != 0 {
			s.w.emit(s.w.filt.classify(filepath.Dir(mp), filepath.Base(mp), false, o).records()...)
		}
		if _, ok := s.files[wd]; !ok {
			return
		}
	}
	if k, ok := s.files[wd]; ok {
		s.fileEvent(k, wd, mask)
		return
	}
	dir, ok := s.wds[wd]
	if !ok {
		return // a watch already removed
	}
	switch {
	case mask&unix.IN_IGNORED != 0:
		if s.paths[dir] == wd {
			delete(s.paths, dir)
		}
		delete(s.wds, wd)
		return
	case mask&unix.IN_UNMOUNT != 0:
		// Everything below dir is now another filesystem (or gone);
		// check() sees the mount change and rescans it.
		if underAny(dir, s.roots) {
			s.w.gap(dir, "filesystem unmounted: "+dir)
		}
		return
	}
	isDir := mask&unix.IN_ISDIR != 0
	o := inoOps(mask)
	if name == "" {
		// The directory itself: its parent's watch reports the same
		// change with a name, except for "/" and a mount point, whose
		// parent's watch is on what the mount hides (the root of a
		// filesystem or a bind mount, changed through its own path).
		if dir != "/" && !s.isMountPoint(dir) || o == 0 {
			return
		}
	}
	v := s.w.filt.classify(dir, name, isDir, o)
	if v.fence != "" {
		s.fences = append(s.fences, v.fence)
		return
	}
	s.w.emit(v.records()...)
	p := filepath.Join(dir, name)
	if isDir && mask&unix.IN_MOVED_FROM != 0 && underAny(dir, s.roots) {
		// Its watches now describe another place (or none we watch);
		// if it moved within the roots, its MOVED_TO walks it again.
		// They are dropped after this read, unless that walk placed
		// them again meanwhile.
		s.movedOut = append(s.movedOut, p)
	}
	if v.tree != "" {
		if r, ok := rootOf(v.tree, s.roots); ok {
			_ = s.walk(ctx, v.tree, r)
		}
	}
	if !isDir && mask&unix.IN_MOVED_FROM != 0 {
		// Renamed away: the MOVED_TO's own check sees the file at its
		// new name, so a change noted under the old one is not lost.
		delete(s.vanished, p)
	}
	if !isDir && o&opRemove != 0 && s.unwatchable[p] {
		delete(s.unwatchable, p)
		s.w.clearUncovered(p)
	}
	if v.linkCheck != "" {
		dev, ino, n, regular, err := linkCount(v.linkCheck)
		switch {
		case err == nil && regular:
			if n > 1 {
				// A name made for a file with other links is link(2):
				// its link count rose (see RecLinkAdded).
				kind := RecInode
				if mask&unix.IN_CREATE != 0 {
					kind = RecLinkAdded
				}
				s.w.emit(Record{Kind: kind, Path: v.linkCheck, Text: formatDevIno(dev, ino)})
				if r, ok := rootOf(v.linkCheck, s.roots); ok {
					_ = s.watchFile(v.linkCheck, r)
				}
			}
		case o&(opMeta|opContent) != 0:
			// The name no longer leads to the file that changed: it was
			// removed or replaced before this event was read. inotify
			// cannot say which inode that was, nor whether it had links
			// elsewhere whose directories saw nothing (a change through
			// a temporary hard link). Unless a rename in this read
			// explains it, that is a gap for its root: the next backup
			// scans fully rather than trust the journal.
			s.vanished[v.linkCheck] = true
		}
	}
	for _, r := range v.rootsReplaced {
		s.rewalk[r] = true
	}
}

// tick does the periodic work the main loop asks for: on a heartbeat, the
// checks. It never waits for the lock: while the event goroutine holds
// it, the check waits for the next heartbeat (a fence does it anyway).
func (s *inoSource) tick(ctx context.Context, heartbeat bool) {
	if !heartbeat {
		return
	}
	// TryLock, not Lock: the main loop must keep its heartbeat and notice
	// a stop however long a walk takes.
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	s.checkLocked(ctx)
}

// checkLocked notices what inotify does not report: a root now on another
// filesystem, filesystems mounted or unmounted inside roots; and retries
// roots that hit the watch limit.
func (s *inoSource) checkLocked(ctx context.Context) {
	defer s.refreshDesc()
	for _, r := range s.roots {
		dev, err := devOf(nearestExisting(r))
		if err != nil || dev == s.rootDev[r] {
			continue
		}
		s.w.gap(r, "filesystem changed at "+r)
		s.rootDev[r] = dev
		s.removeTree(r)
		s.establish(ctx, r)
	}
	for r := range s.limited {
		s.removeTree(r)
		s.establish(ctx, r)
	}
	mounts, err := readMountinfo()
	if err != nil {
		s.w.gap("", "journal error: "+err.Error())
		return
	}
	// A directory seen under two names is covered again once the names
	// part (the bind mount went): rescan it, now watched under its own.
	for a, other := range s.aliased {
		if sameDir(a, other) {
			continue
		}
		delete(s.aliased, a)
		s.w.clearUncovered(a)
		s.w.emit(Record{Kind: RecDirty, Path: filepath.Dir(a)}, Record{Kind: RecTree, Path: a})
		if r, ok := rootOf(a, s.roots); ok {
			_ = s.walk(ctx, a, r)
		}
	}
	nested := nestedMounts(mounts, s.roots, s.w.l.dir)
	for _, mp := range diffMounts(s.nested, nested) {
		if parent := filepath.Dir(mp); underAny(parent, s.roots) {
			s.w.emit(Record{Kind: RecDirty, Path: parent})
		}
		s.w.emit(Record{Kind: RecTree, Path: mp})
		s.removeTree(mp)
		for wd, p := range s.mountFiles {
			if p == mp {
				_, _ = unix.InotifyRmWatch(s.fd, uint32(wd))
				delete(s.mountFiles, wd)
			}
		}
		if r, ok := rootOf(mp, s.roots); ok {
			s.nested = nested // for the walk
			if fi, err := os.Stat(mp); err == nil && fi.IsDir() {
				_ = s.walk(ctx, mp, r)
			} else if err == nil && fi.Mode().IsRegular() {
				if _, mounted := nested[mp]; mounted {
					_ = s.watchMountFile(mp, r)
				}
			}
		}
	}
	s.nested = nested
}

// refreshDesc rebuilds the description describe hands out; mu is held.
func (s *inoSource) refreshDesc() {
	var out []FilesystemInfo
	byDev := map[uint64]*FilesystemInfo{}
	var devs []uint64
	for _, r := range s.roots {
		dev := s.rootDev[r]
		f := byDev[dev]
		if f == nil {
			f = &FilesystemInfo{Dev: dev, Device: deviceString(dev), Mount: r, Source: KindInotify}
			byDev[dev] = f
			devs = append(devs, dev)
		}
		f.Roots = append(f.Roots, r)
	}
	for _, d := range devs {
		f := byDev[d]
		for p := range s.paths {
			if underAny(p, f.Roots) {
				f.Watches++
			}
		}
		for k := range s.fileWatch {
			if k.dev == f.Dev {
				f.Watches++
			}
		}
		out = append(out, *f)
	}
	s.descMu.Lock()
	s.desc = out
	s.descMu.Unlock()
}

// describe adds the watched filesystems to ws, as last refreshed (at
// start and at every check).
func (s *inoSource) describe(ws *WatcherState) {
	s.descMu.Lock()
	defer s.descMu.Unlock()
	ws.Filesystems = append(ws.Filesystems, s.desc...)
}
