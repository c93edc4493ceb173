//go:build linux || darwin

package fs

import "golang.org/x/sys/unix"

// Chown sets the owner of the open file.
func (f *File) Chown(uid, gid uint32) error {
	if err := unix.Fchown(f.fd, int(uid), int(gid)); err != nil {
		return pathError("chown", f.path, err)
	}
	return nil
}

// Chown sets the owner of the directory itself.
func (d *Dir) Chown(uid, gid uint32) error {
	if err := unix.Fchown(d.fd, int(uid), int(gid)); err != nil {
		return pathError("chown", d.path, err)
	}
	return nil
}

// Lchown sets the owner of the entry name, not following a symlink.
func (d *Dir) Lchown(name string, uid, gid uint32) error {
	if err := unix.Fchownat(d.fd, name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError("chown", joinPath(d.path, name), err)
	}
	return nil
}

// Chmod sets the permission bits (0o7777) of the open file.
func (f *File) Chmod(mode uint32) error {
	if err := unix.Fchmod(f.fd, mode&0o7777); err != nil {
		return pathError("chmod", f.path, err)
	}
	return nil
}

// Chmod sets the permission bits (0o7777) of the directory itself.
func (d *Dir) Chmod(mode uint32) error {
	if err := unix.Fchmod(d.fd, mode&0o7777); err != nil {
		return pathError("chmod", d.path, err)
	}
	return nil
}

// Lchmod sets the permission bits (0o7777) of the entry name, not
// following a symlink. Symlinks themselves have no mode on Linux; there it
// fails for them.
func (d *Dir) Lchmod(name string, mode uint32) error {
	if err := chmodNoFollow(d.fd, name, mode&0o7777); err != nil {
		return pathError("chmod", joinPath(d.path, name), err)
	}
	return nil
}

// SetMtime sets the modification time (ns since the epoch) of the entry
// name, not following a symlink; the access time is left alone.
func (d *Dir) SetMtime(name string, mtime int64) error {
	ts := []unix.Timespec{{Nsec: utimeOmit}, unix.NsecToTimespec(mtime)}
	if err := unix.UtimesNanoAt(d.fd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError("set mtime", joinPath(d.path, name), err)
	}
	return nil
}
