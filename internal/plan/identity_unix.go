//go:build unix

package plan

import "syscall"

// fileIdentity returns the device and inode of path, not following a
// symlink.
func fileIdentity(path string) (dev, ino uint64, err error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.Dev), st.Ino, nil
}
