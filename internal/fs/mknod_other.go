//go:build darwin || windows

package fs

// Mknod would create a fifo, socket or device node. macOS has mknodat and
// mkfifoat only from macOS 13 on and golang.org/x/sys/unix wraps neither
// (the path-based calls would follow symlinks in the target); Windows has
// no such entries. So it fails with ErrNotSupported.
func (d *Dir) Mknod(name string, mode uint32, rdev uint64) error {
	return notSupported(mknodOp(mode), joinPath(d.path, name))
}
