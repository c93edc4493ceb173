package fs

import "golang.org/x/sys/unix"

// Mknod creates a fifo, socket or device node name. mode holds its type
// (TypeFifo, TypeSocket, TypeCharDev or TypeBlockDev) and permissions;
// rdev is the device number of a device. An existing entry fails with an
// error matching ErrExist; devices need root.
func (d *Dir) Mknod(name string, mode uint32, rdev uint64) error {
	if err := unix.Mknodat(d.fd, name, mode, int(rdev)); err != nil {
		return pathError(mknodOp(mode), joinPath(d.path, name), err)
	}
	return nil
}
