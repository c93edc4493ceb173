package fs

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// procPath names an entry through /proc/self/fd, which keeps the xattr
// calls (which have no *at variants) relative to the directory descriptor
// and working for paths longer than PATH_MAX.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// Xattrs returns the extended attributes of the entry name (not following
// a symlink), sorted by name. Filesystems without xattr support yield none.
func (d *Dir) Xattrs(name string) ([]Xattr, error) {
	p := procPath(d.fd, name)
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		if err == unix.ENOTSUP || err == unix.ENODATA {
			return nil, nil
		}
		return nil, pathError("list xattrs", joinPath(d.path, name), err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, pathError("list xattrs", joinPath(d.path, name), err)
	}
	var out []Xattr
	for _, n := range splitNul(buf[:size]) {
		v, err := getXattr(p, n)
		if err == unix.ENODATA {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, pathError("read xattr "+n, joinPath(d.path, name), err)
		}
		out = append(out, Xattr{Name: n, Value: v})
	}
	sortXattrs(out)
	return out, nil
}

func getXattr(p, name string) ([]byte, error) {
	return xattrValue(func(buf []byte) (int, error) { return unix.Lgetxattr(p, name, buf) })
}

// Lsetxattr sets an extended attribute of the entry name, not following a
// symlink.
func (d *Dir) Lsetxattr(name string, x Xattr) error {
	if err := unix.Lsetxattr(procPath(d.fd, name), x.Name, x.Value, 0); err != nil {
		return pathError("set xattr "+x.Name, joinPath(d.path, name), err)
	}
	return nil
}
