package fs

import (
	"golang.org/x/sys/unix"
)

// openForXattrs opens the entry name itself, a symlink included
// (O_SYMLINK), since macOS has no xattr calls relative to a directory and
// no /proc to name the entry through. Devices and sockets are not opened:
// opening a device can have side effects, and sockets cannot be opened;
// ok is false for them.
func (d *Dir) openForXattrs(name string) (fd int, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, false, err
	}
	switch uint32(st.Mode) & TypeMask {
	case TypeRegular, TypeDir, TypeSymlink, TypeFifo:
	default:
		return -1, false, nil
	}
	for {
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_SYMLINK|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err == nil, err
		}
	}
}

// Xattrs returns the extended attributes of the entry name (not following
// a symlink), sorted by name. Filesystems without xattr support, devices
// and sockets yield none.
func (d *Dir) Xattrs(name string) ([]Xattr, error) {
	p := joinPath(d.path, name)
	fd, ok, err := d.openForXattrs(name)
	if err != nil {
		return nil, pathError("list xattrs", p, err)
	}
	if !ok {
		return nil, nil
	}
	defer unix.Close(fd)
	size, err := unix.Flistxattr(fd, nil)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, pathError("list xattrs", p, err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(fd, buf); err != nil {
		return nil, pathError("list xattrs", p, err)
	}
	var out []Xattr
	for _, n := range splitNul(buf[:size]) {
		v, err := fgetXattr(fd, n)
		if err == unix.ENOATTR {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, pathError("read xattr "+n, p, err)
		}
		out = append(out, Xattr{Name: n, Value: v})
	}
	sortXattrs(out)
	return out, nil
}

func fgetXattr(fd int, name string) ([]byte, error) {
	return xattrValue(func(buf []byte) (int, error) { return unix.Fgetxattr(fd, name, buf) })
}

// Lsetxattr sets an extended attribute of the entry name, not following a
// symlink. Devices and sockets cannot take xattrs here (see openForXattrs).
func (d *Dir) Lsetxattr(name string, x Xattr) error {
	p := joinPath(d.path, name)
	fd, ok, err := d.openForXattrs(name)
	if err != nil {
		return pathError("set xattr "+x.Name, p, err)
	}
	if !ok {
		return notSupported("set xattr "+x.Name+" of a device or socket", p)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
		return pathError("set xattr "+x.Name, p, err)
	}
	return nil
}
