//go:build linux || darwin

package fs

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is an open directory. Names given to its methods are single entry
// names (no separators), and a symlink at such a name is never followed.
//
// On Linux and macOS a Dir is a directory descriptor; it is safe for
// concurrent use, and must be closed once.
type Dir struct {
	fd   int
	path string // for messages
}

// Path returns the path the directory was opened as.
func (d *Dir) Path() string { return d.path }

// Fd returns the directory descriptor, for system calls this package does
// not wrap. It stays owned by d.
func (d *Dir) Fd() uintptr { return uintptr(d.fd) }

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC

// OpenDir opens the directory at path p, which should be absolute (a
// relative one is taken from the working directory). A symlink as its last
// component is refused; symlinks before it are followed.
func OpenDir(p string) (*Dir, error) {
	return openDirAt(unix.AT_FDCWD, p, p, dirFlags|unix.O_NOFOLLOW, "open directory")
}

// OpenDirFollow opens the directory at path p, following a symlink as its
// last component too: a restore target may be a symlink to where the user
// wants the files.
func OpenDirFollow(p string) (*Dir, error) {
	return openDirAt(unix.AT_FDCWD, p, p, dirFlags, "open directory")
}

// OpenDir opens the subdirectory name, never following a symlink there.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	return openDirAt(d.fd, name, joinPath(d.path, name), dirFlags|unix.O_NOFOLLOW, "open directory")
}

// OpenDirPath opens the directory at the slash-separated path rel below d
// ("." for d itself), one component at a time, never following a symlink.
// The result serves as the directory of Lstat and [Link] calls only: on
// Linux it is an O_PATH descriptor (on macOS O_SEARCH where known), which
// needs no read permission on the directories, since a restored directory
// may already have its final, restrictive mode; it cannot be listed.
func (d *Dir) OpenDirPath(rel string) (*Dir, error) {
	fd, err := dup(d.fd)
	if err != nil {
		return nil, pathError("open directory", d.path, err)
	}
	cur := &Dir{fd: fd, path: d.path}
	if rel == "." {
		return cur, nil
	}
	for rest := rel; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		next, err := openDirAt(cur.fd, name, joinPath(cur.path, name), pathDirFlags, "open directory")
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

func dup(fd int) (int, error) {
	for {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != unix.EINTR {
			return nfd, err
		}
	}
}

func openDirAt(dirfd int, name, p string, flags int, op string) (*Dir, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if f, retry := retryPathDir(flags, err); retry {
				flags = f
				continue
			}
			return nil, pathError(op, p, err)
		}
		return &Dir{fd: fd, path: p}, nil
	}
}

// Stat returns the metadata of the directory itself.
func (d *Dir) Stat() (Stat, error) {
	var st unix.Stat_t
	if err := fstat(d.fd, &st); err != nil {
		return Stat{}, pathError("stat", d.path, err)
	}
	return fromUnix(&st), nil
}

// Lstat returns the metadata of the entry name, not following a symlink.
func (d *Dir) Lstat(name string) (Stat, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stat{}, pathError("lstat", joinPath(d.path, name), err)
		}
		return fromUnix(&st), nil
	}
}

// Lstat returns the metadata of the entry at path p, not following a
// symlink as its last component.
func Lstat(p string) (Stat, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(unix.AT_FDCWD, p, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Stat{}, pathError("lstat", p, err)
		}
		return fromUnix(&st), nil
	}
}

func fstat(fd int, st *unix.Stat_t) error {
	for {
		err := unix.Fstat(fd, st)
		if err != unix.EINTR {
			return err
		}
	}
}

// Close closes the directory.
func (d *Dir) Close() error {
	if d.fd < 0 {
		return pathError("close", d.path, errors.New("already closed"))
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return pathError("close", d.path, err)
	}
	return nil
}
