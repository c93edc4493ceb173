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
	"strings"
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
	act   activity
	buf   []byte // the event goroutine's read buffer

	// mu guards the fields below. The event goroutine holds it while it
	// handles one event, never across a read; the main loop only tries it
	// (tick, describe), so however long one event takes, the heartbeat
	// goes on and a stop is noticed.
	mu      sync.Mutex
	fss     map[uint64]*fanFS // by fsid
	roots   []string
	rootDev map[string]uint64 // device of each root (or its nearest existing ancestor) when last checked
	nested  map[string]mountKey
	// cache maps directory handles to paths. It is cleared whenever a
	// directory is renamed (see resolveDir for why that is enough).
	cache *lru
	// pending holds handles of multiply-linked files changed through, or
	// resolved to, a path outside the roots; settle looks at them again.
	pending map[string]pendingLinks
	// unopened: mount points inside roots that could not be opened to
	// resolve names through, recorded as a gap since the last fence.
	unopened map[string]bool

	descMu sync.Mutex
	desc   []FilesystemInfo // the last description, for when mu is busy
}

type pendingLinks struct {
	obj   fanFID
	since time.Time
	// added: a link was made outside every root (FAN_CREATE of a name
	// for a file with other links), not only its metadata changed.
	added bool
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
		buf: make([]byte, 256<<10), pending: map[string]pendingLinks{}, unopened: map[string]bool{}, act: activity{name: "the fanotify source"},
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
			return nil, nil, errNeedAdmin
		case unix.EINVAL:
			return nil, nil, errors.New("kernel lacks FAN_REPORT_DFID_NAME (Linux 5.9+)")
		}
		return nil, nil, fmt.Errorf("fanotify_init: %w", err)
	}
	// The fences must travel in this queue, or nothing it delivers could be
	// fenced.
	if err := s.markFS(w.filt.fencesDir, w.filt.fencesDir, false); err != nil {
		unix.Close(s.fd)
		if err == unix.EPERM {
			// Since Linux 5.13 anyone may create a group that reports
			// file handles, but a filesystem mark still needs the
			// capability: say so rather than blame the filesystem.
			return nil, nil, errNeedAdmin
		}
		return nil, nil, fmt.Errorf("state directory %s is on a filesystem fanotify cannot mark: %w", w.l.dir, err)
	}
	var inoRoots []string
	for _, r := range w.roots {
		target := nearestExisting(r)
		if err := s.markFS(target, r, true); err != nil {
			if err == unix.EPERM {
				err = errNeedAdmin
			}
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
	s.refreshDesc()
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

// errNeedAdmin says why fanotify cannot be used without privileges.
var errNeedAdmin = errors.New("fanotify filesystem marks need root or CAP_SYS_ADMIN")

func (s *fanSource) activity() *activity { return &s.act }

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
		if err := s.process(ctx, s.buf[:n]); err != nil {
			return err
		}
	}
	return nil
}

// process handles the events of one read, each under the lock on its own,
// and stops early when ctx is done: the watcher is stopping, and what is
// not recorded now belongs to an epoch no backup will use.
func (s *fanSource) process(ctx context.Context, buf []byte) error {
	m := mounts{}
	defer m.close()
	return parseFanEvents(buf, func(ev fanEvent) {
		if ev.fd >= 0 {
			unix.Close(int(ev.fd)) // not requested in FID mode; never leak one
		}
		if ctx.Err() != nil {
			return
		}
		s.act.begin("handling a fanotify event")
		if s.w.opt.beforeEvent != nil {
			s.w.opt.beforeEvent(KindFanotify)
		}
		s.mu.Lock()
		s.handle(ctx, m, ev)
		s.mu.Unlock()
		s.act.end()
	})
}

// mounts holds, per filesystem, descriptors of its mounts that anchor
// paths (the mounts of roots, of mount points inside roots and of the
// fences directory), to open handles relative to. They are opened when
// first needed and closed when the work that needed them is done, so the
// watcher never keeps a filesystem busy (umount works).
type mounts map[uint64][]fsMount

// fsMount is one mount of a marked filesystem. A filesystem may be
// mounted more than once, typically by bind mounts: a directory inside a
// root may then also be visible elsewhere, where it is changed, and a
// directory outside every root through the other mount's path may be
// visible inside one. A handle opened relative to a mount resolves to a
// path through that mount, so each mount names the directory once.
type fsMount struct {
	fd int
	// point is the path opened: the mount point, for a mount inside a
	// root.
	point string
	// root is the key (fanFID.key) of the handle of what was opened, the
	// mount's root for a mount point: an event whose object that is
	// changes the entry at point.
	root string
	// file: a file is mounted there (a bind mount of a file); nothing
	// resolves through it but its own name.
	file bool
}

func (m mounts) close() {
	for _, ms := range m {
		for _, x := range ms {
			unix.Close(x.fd)
		}
	}
	clear(m)
}

// get returns the mounts of f, opening them on first use.
func (m mounts) get(s *fanSource, f *fanFS) []fsMount {
	ms, ok := m[f.fsid]
	if !ok {
		ms = s.openMounts(f)
		m[f.fsid] = ms
	}
	return ms
}

func (s *fanSource) handle(ctx context.Context, m mounts, ev fanEvent) {
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
		dirs, ok := s.resolveDir(ctx, m, *ev.dir)
		if !ok {
			return
		}
		// Every name the directory has through the filesystem's mounts
		// (more than one with bind mounts) is recorded: a change made
		// through one concerns the others.
		inside := false
		for _, dir := range dirs {
			v := s.w.filt.classify(dir, ev.name, isDir, o)
			if v.fence != "" {
				// What produces no event (a mount, a lost mark) and what
				// waits in pending must be recorded before the fence that
				// claims completeness. The main loop records the fence
				// once every source has seen it.
				s.checkLocked(ctx, m)
				s.w.sawFence(v.fence, srcFanotify)
				return
			}
			s.w.emit(v.records()...)
			if v.linkCheck != "" {
				s.checkLinks(ctx, m, v.linkCheck, ev.obj, ev.mask&fanCreate != 0)
			}
			inside = inside || v.dirty != "" || within(dir, s.w.l.dir)
		}
		if ev.obj != nil && ev.name != "" {
			// The entry itself may be the root of a bind mount inside a
			// root (a bound directory's own metadata, a bound file's
			// content), whose parent there saw nothing.
			inside = s.mountRootChanged(m, *ev.obj, isDir, o) || inside
		}
		switch {
		case inside || isDir || ev.name == "" || ev.obj == nil:
		case o&(opMeta|opContent) != 0:
			// Changed through a path outside every root: if the file
			// has other links, one may be inside a root.
			s.outsideChange(ctx, m, *ev.obj, false)
		case ev.mask&fanCreate != 0:
			// A new name outside every root. For a file with other links
			// that is link(2): its link count rose, so one of them may be
			// inside a root, where it was the only link until now.
			s.outsideChange(ctx, m, *ev.obj, true)
		}
	case ev.obj != nil && !isDir && ev.mask&fanAttrib != 0:
		// Only the object: a link count change (link, unlink or rename
		// over another name), which concerns every remaining link. The
		// kernel sends no directory with it: link(2) reports this and a
		// FAN_CREATE of the new name, and the old name is never reported.
		s.linkCountChange(ctx, m, *ev.obj)
	}
}

// resolveDir returns the current paths of a directory handle, one per
// mount of its filesystem that reaches it (more than one when bind mounts
// show it in several places), or false when the directory no longer
// exists or the event is not ours.
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
// A directory whose path cannot be found (not in its parent, hidden by a
// mount, or moved while we looked) is skipped for the same reasons. A
// mount made or removed inside a root is found by the check before the
// next fence, which rescans what it shows (a tree record), so names cached
// before it are not missed. Resolution is bounded (resolveLimits);
// running out, or any other failure, is a gap for the roots on that
// filesystem.
func (s *fanSource) resolveDir(ctx context.Context, m mounts, fid fanFID) ([]string, bool) {
	key := fid.key()
	if p, ok := s.cache.get(key); ok {
		return strings.Split(p, "\x00"), true
	}
	f := s.fss[fid.fsid]
	if f == nil {
		return nil, false // a filesystem no longer watched (unmounted)
	}
	ms := m.get(s, f)
	if len(ms) == 0 || ms[0].file {
		if ctx.Err() == nil {
			s.fsGap(f, "journal error: no mounted directory of the filesystem to open handles with")
		}
		return nil, false
	}
	var paths []string
	for _, mt := range ms {
		if mt.file {
			continue
		}
		p, err := s.resolveVia(ctx, mt.fd, fid)
		switch {
		case err == nil:
			if !contains(paths, p) {
				paths = append(paths, p)
			}
		case errors.Is(err, errVanished), goneErr(err), ctx.Err() != nil:
			// Gone, or not reachable through this mount (a bind mount
			// of another part of the filesystem).
		case errors.Is(err, errResolveBudget):
			s.fsGap(f, fmt.Sprintf("journal error: cannot resolve a directory handle within %v (a path longer than PATH_MAX below very large directories)", resolveTime))
			return nil, false
		default:
			s.fsGap(f, "journal error: cannot resolve a directory handle through "+mt.point+": "+err.Error())
			return nil, false
		}
	}
	if len(paths) == 0 {
		return nil, false
	}
	s.cache.put(key, strings.Join(paths, "\x00"))
	return paths, true
}

// resolveVia opens the directory handle fid relative to the mount open as
// mfd and returns its path through that mount.
func (s *fanSource) resolveVia(ctx context.Context, mfd int, fid fanFID) (string, error) {
	fd, err := openByHandle(ctx, mfd, fid)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return dirPath(ctx, fd, newResolveLimits())
}

// mountRootChanged records a change of the entry obj where a mount inside
// a root shows it as the mount's root (a bind mount of that very file or
// directory): there it is the entry at the mount point. It reports
// whether it recorded anything.
func (s *fanSource) mountRootChanged(m mounts, obj fanFID, isDir bool, o op) bool {
	o &= opMeta | opContent // the mount keeps showing it, renamed or not
	f := s.fss[obj.fsid]
	if o == 0 || f == nil || !s.hasNested(f) {
		return false
	}
	key := obj.key()
	recorded := false
	for _, mt := range m.get(s, f) {
		if mt.root != key || mt.point == "/" {
			continue
		}
		v := s.w.filt.classify(filepath.Dir(mt.point), filepath.Base(mt.point), isDir, o)
		s.w.emit(v.records()...)
		recorded = recorded || v.dirty != ""
	}
	return recorded
}

// enomemRetries are the pauses before retrying open_by_handle_at after
// ENOMEM. Decoding a handle reports every failure as ESTALE except ENOMEM,
// and on ext4 ENOMEM is what a handle gets whose inode number is being
// reused at that very moment: iget_locked returns NULL for an inode still
// being created (I_CREATING), and ext4_iget reports NULL as ENOMEM. A
// moment later the new inode is complete, its generation does not match
// the handle's, and the answer is ESTALE: the object is gone. Under heavy
// churn of deleted and created files this happens every few seconds. A
// real shortage of memory looks the same, so once the retries are spent
// the caller records a gap, never a removal.
var enomemRetries = []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond}

// hasNested reports whether one of f's anchors is a mount point inside a
// root: only then can an entry of f be a mount's root there.
func (s *fanSource) hasNested(f *fanFS) bool {
	for _, a := range f.anchors {
		if _, ok := s.nested[a]; ok {
			return true
		}
	}
	return false
}

// openHandle opens a file handle with O_PATH, relative to a mount of its
// filesystem (from m, opened on first use).
func (s *fanSource) openHandle(ctx context.Context, m mounts, f *fanFS, fid fanFID) (int, error) {
	ms := m.get(s, f)
	if len(ms) == 0 || ms[0].file {
		return -1, errors.New("no mounted directory of the filesystem to open handles with")
	}
	return openByHandle(ctx, ms[0].fd, fid)
}

// openByHandle opens a file handle with O_PATH relative to the mount open
// as mfd, retrying after ENOMEM (see enomemRetries).
func openByHandle(ctx context.Context, mfd int, fid fanFID) (int, error) {
	h := unix.NewFileHandle(fid.htype, fid.handle)
	for try := 0; ; try++ {
		fd, err := unix.OpenByHandleAt(mfd, h, unix.O_PATH|unix.O_CLOEXEC)
		if err != unix.ENOMEM || try == len(enomemRetries) || !sleepCtx(ctx, enomemRetries[try]) {
			return fd, err
		}
	}
}

// sleepCtx waits d, or less when ctx is done first (then it reports false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// openMounts opens each distinct mount of f that holds one of its anchors,
// the anchors' order kept (handles of files are opened relative to the
// first directory). A nested mount point that cannot be opened is a gap
// for it, once until the next fence: names through it would be missed.
func (s *fanSource) openMounts(f *fanFS) []fsMount {
	var out []fsMount
	seen := map[int]bool{}
	add := func(p string) (isDir, ok bool) {
		// O_PATH first: an anchor may be a file (a root, or a bind mount
		// of a file), which is never opened for reading.
		pfd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return false, false
		}
		var st unix.Stat_t
		var sf unix.Statfs_t
		if unix.Fstat(pfd, &st) != nil || unix.Fstatfs(pfd, &sf) != nil || fsidKey(sf.Fsid.Val[0], sf.Fsid.Val[1]) != f.fsid ||
			st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(pfd)
			return false, true
		}
		isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
		mt := fsMount{fd: pfd, point: p, file: !isDir}
		if h, mnt, err := unix.NameToHandleAt(pfd, "", unix.AT_EMPTY_PATH); err == nil {
			// Without the mount's identity the mount is kept all the
			// same: resolving through one mount twice repeats a name.
			if seen[mnt] {
				unix.Close(pfd)
				return isDir, true
			}
			seen[mnt] = true
			mt.root = fanFID{fsid: f.fsid, htype: h.Type(), handle: h.Bytes()}.key()
		}
		if isDir {
			// open_by_handle_at wants a descriptor that is not O_PATH.
			fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			unix.Close(pfd)
			if err != nil {
				return isDir, false
			}
			mt.fd = fd
		}
		out = append(out, mt)
		return isDir, true
	}
	for _, a := range f.anchors {
		p := nearestExisting(a)
		isDir, ok := add(p)
		if _, nested := s.nested[a]; !ok && nested && !s.unopened[a] {
			s.unopened[a] = true
			s.w.gap(a, fmt.Sprintf("journal error: cannot open the mount at %s to resolve names through it", a))
		}
		if ok && !isDir {
			// A root or bind mount that is a file: its directory is
			// what handles of directories resolve through.
			add(filepath.Dir(p))
		}
	}
	// Handles of files are opened relative to the first directory.
	for i, mt := range out {
		if !mt.file {
			out[0], out[i] = out[i], out[0]
			break
		}
	}
	return out
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
// one link: its other links, wherever they are, changed too. created says
// the event made the name (link(2) when there are other links): then its
// link count rose, which the record says (RecLinkAdded), because a backup
// of other roots may hold another link that was the only one until now.
func (s *fanSource) checkLinks(ctx context.Context, m mounts, path string, obj *fanFID, created bool) {
	kind := RecInode
	if created {
		kind = RecLinkAdded
	}
	if obj == nil {
		if dev, ino, n, regular, err := linkCount(path); err == nil && regular && n > 1 {
			s.w.emit(Record{Kind: kind, Path: path, Text: formatDevIno(dev, ino)})
		}
		return
	}
	dev, ino, n, ok := s.statHandle(ctx, m, *obj)
	if ok && n > 1 {
		s.w.emit(Record{Kind: kind, Path: path, Text: formatDevIno(dev, ino)})
	}
}

// outsideChange handles metadata or content changed, or a link made
// (added), through a name outside the roots.
func (s *fanSource) outsideChange(ctx context.Context, m mounts, obj fanFID, added bool) {
	f := s.fss[obj.fsid]
	if f == nil || len(f.anchors) == 1 && f.anchors[0] == s.w.filt.fencesDir {
		return // no root on that filesystem
	}
	if _, _, n, ok := s.statHandle(ctx, m, obj); ok && n > 1 {
		s.deferLinks(obj, added)
	}
}

// deferLinks queues a handle for settle.
func (s *fanSource) deferLinks(obj fanFID, added bool) {
	k := obj.key()
	if p, ok := s.pending[k]; ok {
		if added && !p.added {
			p.added, p.since = true, time.Now()
			s.pending[k] = p
		}
		return
	}
	obj.handle = append([]byte(nil), obj.handle...) // it aliased the read buffer
	s.pending[k] = pendingLinks{obj: obj, since: time.Now(), added: added}
}

// statHandle returns dev, inode and link count of a non-directory handle.
func (s *fanSource) statHandle(ctx context.Context, m mounts, obj fanFID) (dev, ino, nlink uint64, ok bool) {
	f := s.fss[obj.fsid]
	if f == nil {
		return 0, 0, 0, false
	}
	fd, err := s.openHandle(ctx, m, f, obj)
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
func (s *fanSource) linkCountChange(ctx context.Context, m mounts, obj fanFID) {
	f := s.fss[obj.fsid]
	if f == nil || len(f.anchors) == 1 && f.anchors[0] == s.w.filt.fencesDir {
		return
	}
	fd, err := s.openHandle(ctx, m, f, obj)
	if err != nil {
		if !goneErr(err) && ctx.Err() == nil {
			s.fsGap(f, "journal error: open_by_handle_at: "+err.Error())
		}
		return
	}
	defer unix.Close(fd)
	s.inodeLinks(fd, pendingLinks{obj: obj}, true)
}

// inodeLinks records what a link count change of the open file fd means.
// When the kernel resolves it to a verified path outside the roots and it
// has other links, the decision waits for settle (if first is set): many
// programs write files atomically by linking a temporary file into place
// and unlinking it, and a moment later that file has one link, outside
// the roots, and nothing need be recorded. Waiting is safe: a link under a
// root removed meanwhile is recorded by its own DELETE event.
//
// The kernel resolves a handle to one of the file's names (the newest one
// it has in memory), so a file linked from inside a root to a name outside
// resolves to the name outside: nothing tells where its other link is.
// That case (p.added) is recorded as RecLinkAdded: the file may have had
// one link until now, which the backup's records of hard-linked files do
// not hold, so the backup looks its number up in its stat cache too.
func (s *fanSource) inodeLinks(fd int, p pendingLinks, first bool) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink == 0 || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return // deleted: each removed link was recorded in its directory
	}
	num := formatDevIno(st.Dev, st.Ino)
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	verified := false
	if err == nil && isCleanAbs(path) {
		// A disconnected dentry yields a path that is not the file's;
		// only trust a path that leads to this very inode.
		var pst unix.Stat_t
		verified = unix.Lstat(path, &pst) == nil && pst.Dev == st.Dev && pst.Ino == st.Ino
	}
	if !verified {
		path = ""
	}
	switch {
	case verified && underAny(path, s.w.roots):
		s.w.emit(Record{Kind: RecDirty, Path: filepath.Dir(path)}, Record{Kind: RecInode, Path: path, Text: num})
	case verified && st.Nlink > 1 && first:
		s.deferLinks(p.obj, p.added)
	case p.added && st.Nlink > 1:
		s.w.emit(Record{Kind: RecLinkAdded, Path: path, Text: num})
	case !verified || st.Nlink > 1:
		// Another link may be inside a root: the backup finds it by
		// number.
		s.w.emit(Record{Kind: RecInode, Text: num})
	}
}

// settleLocked decides the deferred link count changes older than
// settleDelay, or all of them when all is set (before a fence record).
// Before a fence it first lets links added outside the roots age to
// settleDelay (at most that long): a repository or editor publishing a
// file by link and unlink is then done, rather than have the backup scan
// fully because its fence caught the file with two names.
func (s *fanSource) settleLocked(ctx context.Context, m mounts, all bool) {
	if len(s.pending) == 0 {
		return
	}
	now := time.Now()
	if all {
		var wait time.Duration
		for _, p := range s.pending {
			if p.added {
				wait = max(wait, settleDelay-now.Sub(p.since))
			}
		}
		if wait > 0 {
			sleepCtx(ctx, wait)
			now = time.Now()
		}
	}
	for k, p := range s.pending {
		if ctx.Err() != nil {
			return
		}
		if !all && now.Sub(p.since) < settleDelay {
			continue
		}
		delete(s.pending, k)
		f := s.fss[p.obj.fsid]
		if f == nil {
			continue
		}
		fd, err := s.openHandle(ctx, m, f, p.obj)
		if err != nil {
			if !goneErr(err) && ctx.Err() == nil {
				s.fsGap(f, "journal error: open_by_handle_at: "+err.Error())
			}
			continue
		}
		s.inodeLinks(fd, p, false)
		unix.Close(fd)
	}
}

// tick does the periodic work the main loop asks for: decide deferred link
// count changes, and on a heartbeat check the marks. It never waits for
// the lock: while the event goroutine holds it, the work waits for the
// next tick (a fence does it anyway, in the event goroutine).
func (s *fanSource) tick(ctx context.Context, heartbeat bool) {
	// TryLock, not Lock: the main loop must keep its heartbeat and notice
	// a stop however long one event takes.
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	m := mounts{}
	defer m.close()
	if heartbeat {
		s.checkLocked(ctx, m)
	} else {
		s.settleLocked(ctx, m, false)
	}
}

// checkLocked settles every deferred link count change and verifies the
// marks: a filesystem mark vanishes without an event when its filesystem
// is unmounted, a root may now be on another filesystem, and filesystems
// may have been mounted or unmounted inside roots.
func (s *fanSource) checkLocked(ctx context.Context, m mounts) {
	s.settleLocked(ctx, m, true)
	clear(s.unopened) // a gap each fence interval while it lasts
	defer s.refreshDesc()
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
	changed := diffMounts(s.nested, nested)
	if len(changed) > 0 {
		// Bind mounts give directories other names: resolve afresh.
		s.cache.clear()
	}
	for _, mp := range changed {
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

// refreshDesc rebuilds the description describe hands out; mu is held.
func (s *fanSource) refreshDesc() {
	var out []FilesystemInfo
	for _, f := range s.fss {
		out = append(out, FilesystemInfo{Dev: f.dev, Device: deviceString(f.dev), Mount: f.mount, Type: f.fstype, Source: KindFanotify, Roots: append([]string(nil), f.roots...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mount < out[j].Mount })
	s.descMu.Lock()
	s.desc = out
	s.descMu.Unlock()
}

// describe adds the watched filesystems to ws, as last refreshed (at
// start and at every check) when the event goroutine holds the lock.
func (s *fanSource) describe(ws *WatcherState) {
	s.descMu.Lock()
	defer s.descMu.Unlock()
	ws.Filesystems = append(ws.Filesystems, s.desc...)
}
