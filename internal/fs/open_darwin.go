package fs

import "golang.org/x/sys/unix"

// pathDirFlags open a directory only as an anchor for *at calls. macOS has
// no O_PATH; O_SEARCH (search permission only) is tried first, and where a
// release does not know it, a read-only open (which needs read permission)
// is used instead (see openDirAt).
const pathDirFlags = unix.O_SEARCH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// retryPathDir reports whether an open with pathDirFlags failed for the
// flags themselves and is worth retrying read-only.
func retryPathDir(flags int, err error) (int, bool) {
	if flags&pathDirFlags == pathDirFlags && err == unix.EINVAL {
		return dirFlags | unix.O_NOFOLLOW, true
	}
	return flags, false
}

// openForReading opens name below dirfd for reading without following a
// symlink and without blocking should a fifo have been swapped in. macOS
// has no O_NOATIME.
func openForReading(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
