package changes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// errVanished: the directory, or one above it, was removed or moved while
// we looked, or it cannot be reached by any path (its name is not in its
// parent, or a mount hides it). Its removal or move is itself an event,
// read after this one, that records what a backup must look at, so the
// caller may skip it; a directory no path reaches holds nothing a backup
// can see.
var errVanished = errors.New("directory removed or moved meanwhile")

// errResolveBudget: finding a directory's path cost more than its budget.
// The caller records a gap instead of holding up every later event.
var errResolveBudget = errors.New("resolving the directory's path took too long")

// resolveLimits bound what resolving one directory's path may cost. A
// path longer than PATH_MAX is found by listing each parent for the name of
// its child; under a parent with millions of entries, or a tree renamed
// again and again while we look, that could go on for minutes while every
// later event waits.
type resolveLimits struct {
	deadline time.Time
	entries  int // directory entries that may still be examined
	depth    int // levels that may still be climbed
}

const (
	resolveTime    = 2 * time.Second
	resolveEntries = 1 << 20
	resolveDepth   = 1 << 14
)

func newResolveLimits() *resolveLimits {
	return &resolveLimits{deadline: time.Now().Add(resolveTime), entries: resolveEntries, depth: resolveDepth}
}

// check returns ctx's error, or errResolveBudget once a limit is spent.
func (l *resolveLimits) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.entries < 0 || l.depth < 0 || time.Now().After(l.deadline) {
		return errResolveBudget
	}
	return nil
}

// dirPath returns the absolute path of the directory open as fd (an O_PATH
// descriptor is enough), checked to lead to that very directory. It fails
// with errVanished when the directory is removed, unreachable or moved
// meanwhile, errResolveBudget when lim runs out, ctx's error when ctx is
// done, or another error.
func dirPath(ctx context.Context, fd int, lim *resolveLimits) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("fstat: %w", err)
	}
	if st.Nlink == 0 {
		return "", errVanished // removed
	}
	p, err := procPath(fd, &st)
	if !errors.Is(err, unix.ENAMETOOLONG) {
		return p, err
	}
	// Deeper than PATH_MAX: /proc cannot say; walk up instead.
	return dirPathByWalkingUp(ctx, fd, &st, lim)
}

// procPath reads the path the kernel gives for fd and checks that it
// leads to the directory st describes: an unreachable directory reads as
// "/" and a removed one with " (deleted)" appended, and a directory moved
// after the readlink is somewhere else. ENAMETOOLONG says the path is
// longer than PATH_MAX.
func procPath(fd int, st *unix.Stat_t) (string, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		if errors.Is(err, unix.ENAMETOOLONG) {
			return "", unix.ENAMETOOLONG
		}
		return "", fmt.Errorf("readlink: %w", err)
	}
	if !isCleanAbs(p) {
		return "", errVanished
	}
	var pst unix.Stat_t
	if err := unix.Lstat(p, &pst); err != nil || !sameInode(&pst, st) {
		return "", errVanished
	}
	return p, nil
}

func sameInode(a, b *unix.Stat_t) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// dirPathByWalkingUp reconstructs the absolute path of the directory open
// as fd (whose stat is st) by following ".." until /proc can name an
// ancestor, or to the root, and finding each directory's name in its
// parent. It serves directories whose path is longer than PATH_MAX. The
// result is checked by opening it again one name at a time.
func dirPathByWalkingUp(ctx context.Context, fd int, st *unix.Stat_t, lim *resolveLimits) (string, error) {
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return "", fmt.Errorf("stat /: %w", err)
	}
	cur, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if goneErr(err) {
			return "", errVanished
		}
		return "", fmt.Errorf("reopen directory: %w", err)
	}
	curSt := *st
	var names []string // from the directory upwards
	prefix := ""
	for {
		lim.depth--
		if err := lim.check(ctx); err != nil {
			unix.Close(cur)
			return "", err
		}
		if sameInode(&curSt, &root) {
			prefix = "/"
			break
		}
		if len(names) > 0 {
			// An ancestor's path may fit in PATH_MAX: /proc names it at
			// once, sparing the listing of every level above.
			p, err := procPath(cur, &curSt)
			if err == nil {
				prefix = p
				break
			}
			if !errors.Is(err, unix.ENAMETOOLONG) {
				unix.Close(cur)
				return "", err
			}
		}
		parent, err := unix.Openat(cur, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			if goneErr(err) {
				return "", errVanished
			}
			return "", fmt.Errorf("open parent: %w", err)
		}
		var pst unix.Stat_t
		if err := unix.Fstat(parent, &pst); err != nil {
			unix.Close(parent)
			return "", fmt.Errorf("fstat parent: %w", err)
		}
		if sameInode(&pst, &curSt) || pst.Nlink == 0 {
			// Its own parent without being "/": a directory no path
			// reaches (disconnected from the tree). Or a removed parent.
			unix.Close(parent)
			return "", errVanished
		}
		name, err := childName(ctx, parent, &curSt, lim)
		if err != nil {
			unix.Close(parent)
			return "", err
		}
		names = append(names, name)
		cur, curSt = parent, pst
	}
	unix.Close(cur)
	for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
		names[i], names[j] = names[j], names[i]
	}
	if err := verifyPath(prefix, names, st); err != nil {
		return "", err
	}
	if prefix == "/" {
		return "/" + strings.Join(names, "/"), nil
	}
	return prefix + "/" + strings.Join(names, "/"), nil
}

// verifyPath opens prefix and then each name below it (never following a
// symlink) and checks that it arrives at the directory want describes; a
// rename while the path was being put together would lead elsewhere.
func verifyPath(prefix string, names []string, want *unix.Stat_t) error {
	fd, err := unix.Open(prefix, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errVanished
	}
	for _, n := range names {
		next, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return errVanished
		}
		fd = next
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || !sameInode(&st, want) {
		return errVanished
	}
	return nil
}

// childName finds the entry of the directory open as dir that is the
// directory child. It first looks only at entries whose inode number in
// the listing is child's (cheap: no stat); when none matches it stats every
// subdirectory, which finds mount points (their entry names the inode
// below the mount). A child found under no name is errVanished.
func childName(ctx context.Context, dir int, child *unix.Stat_t, lim *resolveLimits) (string, error) {
	buf := make([]byte, 32<<10)
	for pass := 0; pass < 2; pass++ {
		if _, err := unix.Seek(dir, 0, 0); err != nil {
			return "", fmt.Errorf("list parent: %w", err)
		}
		for {
			n, err := unix.Getdents(dir, buf)
			if goneErr(err) {
				return "", errVanished
			}
			if err != nil {
				return "", fmt.Errorf("list parent: %w", err)
			}
			if n == 0 {
				break
			}
			var found string
			var serr error
			parseDirents(buf[:n], func(ino uint64, typ uint8, name string) bool {
				lim.entries--
				if lim.entries < 0 {
					serr = errResolveBudget
					return false
				}
				if lim.entries%256 == 0 {
					if serr = lim.check(ctx); serr != nil {
						return false
					}
				}
				if name == "." || name == ".." || typ != unix.DT_DIR && typ != unix.DT_UNKNOWN {
					return true
				}
				if pass == 0 && ino != child.Ino {
					return true
				}
				var st unix.Stat_t
				if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && sameInode(&st, child) {
					found = name
					return false
				}
				return true
			})
			if found != "" {
				return found, nil
			}
			if serr != nil {
				return "", serr
			}
		}
	}
	return "", errVanished
}

// parseDirents calls fn for each struct linux_dirent64 in buf (what one
// getdents64 returned) until fn returns false. Malformed data ends it.
func parseDirents(buf []byte, fn func(ino uint64, typ uint8, name string) bool) {
	const hdr = 19 // d_ino, d_off, d_reclen, d_type
	for len(buf) >= hdr {
		reclen := int(binary.NativeEndian.Uint16(buf[16:]))
		if reclen < hdr || reclen > len(buf) {
			return
		}
		ino := binary.NativeEndian.Uint64(buf[0:])
		if !fn(ino, buf[18], cString(buf[hdr:reclen])) {
			return
		}
		buf = buf[reclen:]
	}
}
