package changes

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// errVanished: the directory, or one above it, was removed or moved while
// we looked. Its removal or move is itself an event, read after this one,
// that records what a backup must look at, so the caller may skip it.
var errVanished = errors.New("directory removed or moved meanwhile")

// dirPathByWalkingUp reconstructs the absolute path of the directory open
// as fd by following ".." to the root and finding each directory's name in
// its parent. It serves directories whose path is longer than PATH_MAX,
// which readlink on /proc/self/fd cannot report.
func dirPathByWalkingUp(fd int) (string, error) {
	cur, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("reopen directory: %w", err)
	}
	var parts []string
	for depth := 0; ; depth++ {
		if depth > 1<<16 {
			unix.Close(cur)
			return "", errors.New("directory nesting too deep")
		}
		var st, pst unix.Stat_t
		if err := unix.Fstat(cur, &st); err != nil {
			unix.Close(cur)
			return "", err
		}
		parent, err := unix.Openat(cur, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if errors.Is(err, unix.ENOENT) {
			return "", errVanished
		}
		if err != nil {
			return "", fmt.Errorf("open parent: %w", err)
		}
		if err := unix.Fstat(parent, &pst); err != nil {
			unix.Close(parent)
			return "", err
		}
		if pst.Dev == st.Dev && pst.Ino == st.Ino {
			unix.Close(parent) // reached "/"
			break
		}
		name, err := childName(parent, st.Dev, st.Ino)
		if err != nil {
			unix.Close(parent)
			return "", err
		}
		parts = append(parts, name)
		cur = parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/"), nil
}

// childName finds the entry of dir that is the directory (dev, ino); a
// stat per entry also finds mount points, whose entry has another inode.
func childName(dir int, dev, ino uint64) (string, error) {
	d, err := unix.Dup(dir)
	if err != nil {
		return "", err
	}
	defer unix.Close(d)
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(d, buf)
		if errors.Is(err, unix.ENOENT) {
			return "", errVanished
		}
		if err != nil {
			return "", fmt.Errorf("list parent: %w", err)
		}
		if n == 0 {
			return "", errVanished
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			var st unix.Stat_t
			if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == dev && st.Ino == ino {
				return name, nil
			}
		}
	}
}
