//go:build linux

package changes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fanMask is what the watcher asks fanotify for: everything that changes a
// directory's entries or an entry's metadata or content, on children
// (FAN_EVENT_ON_CHILD) and directories (FAN_ONDIR). No permission events:
// the watcher never makes a filesystem user wait.
const fanMask = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO |
	unix.FAN_MODIFY | unix.FAN_ATTRIB | unix.FAN_CLOSE_WRITE | unix.FAN_DELETE_SELF | unix.FAN_MOVE_SELF |
	unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD

// fanSource reads one fanotify group with filesystem marks on the roots'
// filesystems, the filesystems mounted inside roots, and the state
// directory's filesystem (so fence markers travel in the same queue).
type fanSource struct {
	w     *watcher
	fd    int
	file  *os.File
	flags uint

	mu      sync.Mutex
	fss     map[uint64]*fanFS // by fsid
	roots   []string
	rootDev map[string]uint64 // device of each root (or its nearest existing ancestor) when last checked
	nested  map[string]mountKey
	// cache maps directory handles to paths. It is cleared whenever a
	// directory is renamed (see resolveDir for why that is enough).
	cache *lru
	buf   []byte
	mfds  map[uint64]int // mount fds opened for the current read
	// pending holds handles of multiply-linked files changed through, or
	// resolved to, a path outside the roots; settle looks at them again.
	pending map[string]pendingLinks
}

type pendingLinks struct {
	obj   fanFID
	since time.Time
}

// settleDelay is how long a link count change outside the roots waits
// before a periodic flush decides it (a fence decides at once).
const settleDelay = 200 * time.Millisecond

// fanFS is one marked filesystem.
type fanFS struct {
	fsid   uint64
	dev    uint64
	fstype string
	mount  string // for status
	// anchors are paths on it: roots, mount points inside roots, the
	// fences directory. Handles are opened relative to (the nearest
	// existing directory of) one of them; gaps are scoped to them.
	anchors []string
	roots   []string
}

func newFanSource(w *watcher) (*fanSource, []string, error) {
	s := &fanSource{
		w: w, fd: -1, fss: map[uint64]*fanFS{}, rootDev: map[string]uint64{}, cache: newLRU(16384),
		buf: make([]byte, 256<<10), pending: map[string]pendingLinks{},
	}
	// Prefer reporting the child's handle too (TARGET_FID), so hard-link
	// checks need no path lookup; older kernels take the plainer modes.
	var err error
	for _, flags := range []uint{unix.FAN_REPORT_DFID_NAME_TARGET, unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID, unix.FAN_REPORT_DFID_NAME} {
		s.fd, err = unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|flags, unix.O_RDONLY|unix.O_LARGEFILE)
		if err == nil {
			s.flags = flags
			break
		}
		if err != unix.EINVAL {
			break
		}
	}
	if err != nil {
		switch err {
		case unix.EPERM:
			return nil, nil, errors.New("no CAP_SYS_ADMIN (fanotify filesystem marks need it)")
		case unix.EINVAL:
			return nil, nil, errors.New("kernel lacks FAN_REPORT_DFID_NAME (Linux 5.9+)")
		}
		return nil, nil, fmt.Errorf("fanotify_init: %w", err)
	}
	// The fences must travel in this queue, or nothing it delivers could be
	// fenced.
	if err := s.markFS(w.filt.fencesDir, w.filt.fencesDir, false); err != nil {
		unix.Close(s.fd)
		return nil, nil, fmt.Errorf("state directory %s is on a filesystem fanotify cannot mark: %w", w.l.dir, err)
	}
	var inoRoots []string
	for _, r := range w.roots {
		target := nearestExisting(r)
		if err := s.markFS(target, r, true); err != nil {
			w.gap(r, fmt.Sprintf("unsupported filesystem: fanotify cannot mark %s: %v", target, err))
			inoRoots = append(inoRoots, r)
			continue
		}
		s.roots = append(s.roots, r)
		s.rootDev[r], _ = devOf(target)
	}
	if len(s.roots) == 0 {
		unix.Close(s.fd)
		return nil, nil, errors.New("no root is on a filesystem fanotify can mark")
	}
	mounts, err := readMountinfo()
	if err != nil {
		unix.Close(s.fd)
		return nil, nil, err
	}
	s.nested = nestedMounts(mounts, s.roots, w.l.dir)
	for mp := range s.nested {
		if err := s.markFS(mp, mp, false); err != nil {
			reason := fmt.Sprintf("unsupported filesystem: %s mounted at %s: %v", s.nested[mp].fstype, mp, err)
			w.setUncovered(mp, reason)
			w.gap(mp, reason)
		}
	}
	s.describeMounts(mounts)
	if err := unix.SetNonblock(s.fd, true); err != nil {
		unix.Close(s.fd)
		return nil, nil, err
	}
	// A non-blocking descriptor in an *os.File uses the runtime poller:
	// reads park the goroutine, and Close wakes it.
	s.file = os.NewFile(uintptr(s.fd), "fanotify")
	return s, inoRoots, nil
}

// markFS adds a filesystem mark for the filesystem holding path and
// remembers anchor (and root) on it.
func (s *fanSource) markFS(path, anchor string, isRoot bool) error {
	if err := unix.FanotifyMark(s.fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, fanMask, unix.AT_FDCWD, path); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	var sf unix.Statfs_t
	if err := unix.Statfs(path, &sf); err != nil {
		return err
	}
	key := fsidKey(sf.Fsid.Val[0], sf.Fsid.Val[1])
	f := s.fss[key]
	if f == nil {
		f = &fanFS{fsid: key, dev: st.Dev}
		s.fss[key] = f
	}
	if !contains(f.anchors, anchor) {
		f.anchors = append(f.anchors, anchor)
	}
	if isRoot && !contains(f.roots, anchor) {
		f.roots = append(f.roots, anchor)
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (s *fanSource) close() {
	if s.file != nil {
		s.file.Close()
	}
}

func (s *fanSource) run(ctx context.Context) error {
	for ctx.Err() == nil {
		if s.w.opt.beforeRead != nil {
			s.w.opt.beforeRead(KindFanotify)
		}
		n, err := s.file.Read(s.buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("fanotify read: %w", err)
		}
		if err := s.process(s.buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fanSource) process(buf []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mfds = map[uint64]int{}
	defer s.closeMounts()
	return parseFanEvents(buf, s.handle)
}

func (s *fanSource) closeMounts() {
	for _, fd := range s.mfds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	s.mfds = nil
}

func (s *fanSource) handle(ev fanEvent) {
	if ev.fd >= 0 {
		unix.Close(int(ev.fd)) // not requested in FID mode; never leak one
	}
	if ev.mask&fanQOverflow != 0 {
		s.w.gap("", "overflow")
		return
	}
	isDir := ev.mask&fanOnDir != 0
	if isDir && ev.mask&(fanMovedFrom|fanMovedTo|fanMoveSelf) != 0 {
		// A renamed directory changes the paths of everything below it:
		// forget cached paths. Done before resolving so that this event's
		// own directory is looked up fresh too.
		s.cache.clear()
	}
	o := fanOps(ev.mask)
	switch {
	case ev.dir != nil:
		if o == 0 {
			return // DELETE_SELF/MOVE_SELF: their parent's event covers them
		}
		dir, ok := s.resolveDir(*ev.dir)
		if !ok {
			return
		}
		v := s.w.filt.classify(dir, ev.name, isDir, o)
		if v.fence != "" {
			s.w.sawFence(v.fence, srcFanotify)
			return
		}
		s.w.emit(v.records()...)
		if v.linkCheck != "" {
			s.checkLinks(v.linkCheck, ev.obj)
		} else if !isDir && ev.name != "" && v.dirty == "" && o&(opMeta|opContent) != 0 && ev.obj != nil && !within(dir, s.w.l.dir) {
			// Changed through a path outside every root: if the file
			// has other links, one may be inside a root.
			s.outsideChange(*ev.obj)
		}
	case ev.obj != nil && !isDir && ev.mask&fanAttrib != 0:
		// Only the object: a link count change (link, unlink or rename
		// over another name), which concerns every remaining link.
		s.linkCountChange(*ev.obj)
	}
}

// resolveDir returns the current path of a directory handle, or false when
// the directory no longer exists or the event is not ours.
//
// Why a path resolved later than the event (or taken from the cache) is
// safe: it is the directory's path at some moment after the change, and
// every rename of the directory or an ancestor after that moment produces
// a move event that is read after this one (the cache is cleared when a
// directory move is read, so a cached path is never older than the last
// directory move read). That later event records the new parent and a
// tree record for the moved directory, so its contents are rescanned at
// the new path. A handle that cannot be opened (ESTALE) or resolves to an
// unlinked directory belongs to a directory deleted after the event; its
// deletion is recorded on its parent by the DELETE event, also read later.
// Any other failure is a gap for the roots on that filesystem.
func (s *fanSource) resolveDir(fid fanFID) (string, bool) {
	key := fid.key()
	if p, ok := s.cache.get(key); ok {
		return p, true
	}
	f := s.fss[fid.fsid]
	if f == nil {
		return "", false // a filesystem no longer watched (unmounted)
	}
	fd, err := s.openHandle(f, fid)
	if err != nil {
		if !goneErr(err) {
			s.fsGap(f, "journal error: open_by_handle_at: "+err.Error())
		}
		return "", false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		s.fsGap(f, "journal error: fstat: "+err.Error())
		return "", false
	}
	if st.Nlink == 0 {
		return "", false // removed directory
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if errors.Is(err, unix.ENAMETOOLONG) {
		// Deeper than PATH_MAX: /proc cannot say; walk up instead.
		p, err = dirPathByWalkingUp(fd)
		if errors.Is(err, errVanished) {
			return "", false // like a removed directory, above
		}
	}
	if err != nil || !isCleanAbs(p) {
		s.fsGap(f, fmt.Sprintf("journal error: cannot resolve directory handle (%q, %v)", p, err))
		return "", false
	}
	s.cache.put(key, p)
	return p, true
}

// openHandle opens a file handle with O_PATH, relative to a mount of its
// filesystem. The mount descriptor is opened once per read and closed
// after it, so the watcher never keeps a filesystem busy (umount works).
func (s *fanSource) openHandle(f *fanFS, fid fanFID) (int, error) {
	mfd, ok := s.mfds[f.fsid]
	if !ok {
		mfd = s.openMount(f)
		s.mfds[f.fsid] = mfd
	}
	if mfd < 0 {
		return -1, errors.New("no mounted directory of the filesystem to open handles with")
	}
	h := unix.NewFileHandle(fid.htype, fid.handle)
	for try := 0; ; try++ {
		fd, err := unix.OpenByHandleAt(mfd, h, unix.O_PATH|unix.O_CLOEXEC)
		// Handle decoding reports every failure as ESTALE except ENOMEM,
		// which the kernel's exportfs layer means as "try again" (it can
		// come from reconnecting a directory racing with a rename).
		if err != unix.ENOMEM || try == 4 {
			return fd, err
		}
		s.w.logf("open_by_handle_at: %v, retrying", err)
		time.Sleep(time.Duration(try+1) * time.Millisecond)
	}
}

func (s *fanSource) openMount(f *fanFS) int {
	for _, a := range f.anchors {
		p := nearestExisting(a)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR {
			fd, err = unix.Open(filepath.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			continue
		}
		var sf unix.Statfs_t
		if unix.Fstatfs(fd, &sf) == nil && fsidKey(sf.Fsid.Val[0], sf.Fsid.Val[1]) == f.fsid {
			return fd
		}
		unix.Close(fd)
	}
	return -1
}

// fsGap records a gap for every root and mount point on f.
func (s *fanSource) fsGap(f *fanFS, reason string) {
	for _, a := range f.anchors {
		if a != s.w.filt.fencesDir {
			s.w.gap(a, reason)
		}
	}
}

// checkLinks records an inode record for path when the file has more than
// one link: its other links, wherever they are, changed too.
func (s *fanSource) checkLinks(path string, obj *fanFID) {
	if obj == nil {
		if dev, ino, n, regular, err := linkCount(path); err == nil && regular && n > 1 {
			s.w.emit(Record{Kind: RecInode, Path: path, Text: formatDevIno(dev, ino)})
		}
		return
	}
	dev, ino, n, ok := s.statHandle(*obj)
	if ok && n > 1 {
		s.w.emit(Record{Kind: RecInode, Path: path, Text: formatDevIno(dev, ino)})
	}
}

// outsideChange handles metadata or content changed through a link
// outside the roots.
func (s *fanSource) outsideChange(obj fanFID) {
	f := s.fss[obj.fsid]
	if f == nil || len(f.anchors) == 1 && f.anchors[0] == s.w.filt.fencesDir {
		return // no root on that filesystem
	}
	if _, _, n, ok := s.statHandle(obj); ok && n > 1 {
		s.deferLinks(obj)
	}
}

// deferLinks queues a handle for settle.
func (s *fanSource) deferLinks(obj fanFID) {
	k := obj.key()
	if _, ok := s.pending[k]; ok {
		return
	}
	obj.handle = append([]byte(nil), obj.handle...) // it aliased the read buffer
	s.pending[k] = pendingLinks{obj: obj, since: time.Now()}
}

// statHandle returns dev, inode and link count of a non-directory handle,
// cached for the current read.
func (s *fanSource) statHandle(obj fanFID) (dev, ino, nlink uint64, ok bool) {
	f := s.fss[obj.fsid]
	if f == nil {
		return 0, 0, 0, false
	}
	fd, err := s.openHandle(f, obj)
	if err != nil {
		return 0, 0, 0, false // gone: its removal is recorded where it was
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return 0, 0, 0, false
	}
	return st.Dev, st.Ino, uint64(st.Nlink), true
}

// linkCountChange handles an event that names only a file (no parent): its
// link count changed. The remaining links' metadata changed with it, so
// record the path the kernel resolves the handle to (any one of its links)
// and its directory; when that path is outside the roots (or cannot be
// verified) but other links may exist, record the inode number so the
// backup can find its links inside the roots.
func (s *fanSource) linkCountChange(obj fanFID) {
	f := s.fss[obj.fsid]
	if f == nil || len(f.anchors) == 1 && f.anchors[0] == s.w.filt.fencesDir {
		return
	}
	fd, err := s.openHandle(f, obj)
	if err != nil {
		if !goneErr(err) {
			s.fsGap(f, "journal error: open_by_handle_at: "+err.Error())
		}
		return
	}
	defer unix.Close(fd)
	s.inodeLinks(fd, obj, true)
}

// inodeLinks records what a link count change of the open file fd means.
// When the kernel resolves it to a verified path outside the roots and it
// has other links, the decision waits for settle (if first is set): many
// programs write files atomically by linking a temporary file into place
// and unlinking it, and a moment later that file has one link, outside
// the roots, and nothing need be recorded. Waiting is safe: a link under a
// root removed meanwhile is recorded by its own DELETE event.
func (s *fanSource) inodeLinks(fd int, obj fanFID, first bool) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink == 0 || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return // deleted: each removed link was recorded in its directory
	}
	num := formatDevIno(st.Dev, st.Ino)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	verified := false
	if err == nil && isCleanAbs(p) {
		// A disconnected dentry yields a path that is not the file's;
		// only trust a path that leads to this very inode.
		var pst unix.Stat_t
		verified = unix.Lstat(p, &pst) == nil && pst.Dev == st.Dev && pst.Ino == st.Ino
	}
	switch {
	case verified && underAny(p, s.w.roots):
		s.w.emit(Record{Kind: RecDirty, Path: filepath.Dir(p)}, Record{Kind: RecInode, Path: p, Text: num})
	case verified && st.Nlink > 1 && first:
		s.deferLinks(obj)
	case !verified || st.Nlink > 1:
		// Another link may be inside a root: the backup finds it by
		// number.
		s.w.emit(Record{Kind: RecInode, Text: num})
	}
}

// settle decides the deferred link count changes older than settleDelay,
// or all of them when all is set (before a fence record).
func (s *fanSource) settle(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return
	}
	s.mfds = map[uint64]int{}
	defer s.closeMounts()
	now := time.Now()
	for k, p := range s.pending {
		if !all && now.Sub(p.since) < settleDelay {
			continue
		}
		obj := p.obj
		delete(s.pending, k)
		f := s.fss[obj.fsid]
		if f == nil {
			continue
		}
		fd, err := s.openHandle(f, obj)
		if err != nil {
			if !goneErr(err) {
				s.fsGap(f, "journal error: open_by_handle_at: "+err.Error())
			}
			continue
		}
		s.inodeLinks(fd, obj, false)
		unix.Close(fd)
	}
}

// check verifies the marks: a filesystem mark vanishes without an event
// when its filesystem is unmounted, a root may now be on another
// filesystem, and filesystems may have been mounted or unmounted inside
// roots.
func (s *fanSource) check() {
	s.settle(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	marks, err := fanMarks(s.fd)
	if err != nil {
		s.w.gap("", "journal error: "+err.Error())
		return
	}
	for key, f := range s.fss {
		if !marks[kernelDev(f.dev)] {
			s.fsGap(f, "filesystem unmounted: "+joinPaths(f.anchors))
			delete(s.fss, key)
			s.cache.clear()
		}
	}
	mounts, err := readMountinfo()
	if err != nil {
		s.w.gap("", "journal error: "+err.Error())
		return
	}
	// The fences directory's filesystem must stay marked, or fences would
	// never pass this queue (and Fence would time out).
	if dev, err := devOf(s.w.filt.fencesDir); err == nil && !s.marked(dev) {
		if err := s.markFS(s.w.filt.fencesDir, s.w.filt.fencesDir, false); err != nil {
			s.w.logf("cannot mark the state directory's filesystem again: %v", err)
		}
	}
	for _, r := range s.roots {
		target := nearestExisting(r)
		dev, err := devOf(target)
		if err != nil {
			continue
		}
		if dev == s.rootDev[r] && s.marked(dev) {
			continue
		}
		s.w.gap(r, "filesystem changed at "+r)
		s.rootDev[r] = dev
		if err := s.markFS(target, r, true); err != nil {
			s.w.setUncovered(r, fmt.Sprintf("unsupported filesystem at %s: %v", target, err))
			continue
		}
		s.w.clearUncovered(r)
	}
	nested := nestedMounts(mounts, s.roots, s.w.l.dir)
	for _, mp := range diffMounts(s.nested, nested) {
		// Mounting or unmounting replaces what is visible below mp
		// without any event: rescan it whole.
		if parent := filepath.Dir(mp); underAny(parent, s.roots) {
			s.w.emit(Record{Kind: RecDirty, Path: parent})
		}
		s.w.emit(Record{Kind: RecTree, Path: mp})
		k, mounted := nested[mp]
		if !mounted {
			s.w.clearUncovered(mp)
			continue
		}
		if err := s.markFS(mp, mp, false); err != nil {
			reason := fmt.Sprintf("unsupported filesystem: %s mounted at %s: %v", k.fstype, mp, err)
			s.w.setUncovered(mp, reason)
			s.w.gap(mp, reason)
			continue
		}
		s.w.clearUncovered(mp)
	}
	s.nested = nested
	s.describeMounts(mounts)
}

func (s *fanSource) describeMounts(mounts []mountInfo) {
	for _, f := range s.fss {
		if f.fstype == "" {
			f.fstype = fsType(mounts, f.dev)
		}
		if f.mount == "" && len(f.anchors) > 0 {
			f.mount = mountPoint(mounts, f.dev, nearestExisting(f.anchors[0]))
		}
	}
}

func (s *fanSource) marked(dev uint64) bool {
	for _, f := range s.fss {
		if f.dev == dev {
			return true
		}
	}
	return false
}

func (s *fanSource) describe(ws *WatcherState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []FilesystemInfo
	for _, f := range s.fss {
		out = append(out, FilesystemInfo{Dev: f.dev, Device: deviceString(f.dev), Mount: f.mount, Type: f.fstype, Source: KindFanotify, Roots: append([]string(nil), f.roots...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mount < out[j].Mount })
	ws.Filesystems = append(ws.Filesystems, out...)
}
