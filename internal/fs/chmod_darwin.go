package fs

import "golang.org/x/sys/unix"

// utimeOmit is UTIME_OMIT from macOS's <sys/stat.h>, which x/sys/unix does
// not define for darwin.
const utimeOmit = -2

// chmodNoFollow changes the mode of name without following a symlink;
// macOS's fchmodat supports AT_SYMLINK_NOFOLLOW (symlinks have modes there).
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	return unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
}
