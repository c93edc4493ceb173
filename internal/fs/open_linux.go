package fs

import "golang.org/x/sys/unix"

// pathDirFlags open a directory only as an anchor for *at calls: O_PATH
// needs no read permission on it.
const pathDirFlags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// retryPathDir: every Linux this runs on knows O_PATH.
func retryPathDir(flags int, err error) (int, bool) { return flags, false }

// openForReading opens name below dirfd for reading without following a
// symlink, without blocking should a fifo have been swapped in, and without
// updating its atime where permitted: O_NOATIME needs ownership or
// CAP_FOWNER, so EPERM means try again without it.
func openForReading(dirfd int, name string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
		if err == unix.EPERM {
			fd, err = unix.Openat(dirfd, name, flags, 0)
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}
