package scan

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// Stat is the subset of lstat results a backup uses.
type Stat struct {
	Mode  uint32 // full st_mode, type bits included
	Ino   uint64
	Dev   uint64
	Nlink uint64
	UID   uint32
	GID   uint32
	Size  int64
	MTime int64 // ns since the epoch
	CTime int64
	Rdev  uint64
}

func fromUnix(st *unix.Stat_t) Stat {
	return Stat{Mode: st.Mode, Ino: st.Ino, Dev: st.Dev, Nlink: uint64(st.Nlink), UID: st.Uid, GID: st.Gid, Size: st.Size,
		MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Rdev: st.Rdev}
}

// IsDir, IsRegular and friends classify the mode.
func (s Stat) IsDir() bool     { return s.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s Stat) IsRegular() bool { return s.Mode&unix.S_IFMT == unix.S_IFREG }
func (s Stat) IsSymlink() bool { return s.Mode&unix.S_IFMT == unix.S_IFLNK }

// Lstatat stats name in the directory dirfd without following symlinks.
func Lstatat(dirfd int, name string) (Stat, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stat{}, err
		}
		return fromUnix(&st), nil
	}
}

// Fstat stats an open descriptor.
func Fstat(fd int) (Stat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Stat{}, err
	}
	return fromUnix(&st), nil
}

// OpenDirAt opens the directory name below dirfd without following a
// symlink in its place. dirfd may be unix.AT_FDCWD for a path.
func OpenDirAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// OpenFileAt opens a regular file for reading without following symlinks,
// without updating its atime where permitted, and without blocking should
// it have been replaced by a fifo.
func OpenFileAt(dirfd int, name string) (int, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			// O_NOATIME needs ownership or CAP_FOWNER.
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// ReadDirNames lists a directory, sorted bytewise, without "." and "..".
func ReadDirNames(fd int) ([]string, error) {
	buf := make([]byte, 64<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	sort.Strings(names)
	return names, nil
}

// Readlinkat reads a symlink's target.
func Readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<20 {
			return "", fmt.Errorf("symlink target too long")
		}
	}
}

// procPath names an entry through /proc/self/fd, which keeps xattr calls
// (which have no *at variants) working for paths longer than PATH_MAX.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// Xattr is a name/value pair.
type Xattr struct {
	Name  string
	Value []byte
}

// ListXattrs reads all extended attributes of name below dirfd, sorted by
// name. Filesystems without xattr support yield none.
func ListXattrs(dirfd int, name string) ([]Xattr, error) {
	p := procPath(dirfd, name)
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODATA) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var out []Xattr
	for _, n := range splitNul(buf[:size]) {
		v, err := getXattr(p, n)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s: %w", n, err)
		}
		out = append(out, Xattr{Name: n, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func getXattr(p, name string) ([]byte, error) {
	for size := 256; ; {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			if size, err = unix.Lgetxattr(p, name, nil); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
