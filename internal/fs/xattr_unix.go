//go:build linux || darwin

package fs

import (
	"sort"

	"golang.org/x/sys/unix"
)

// SetXattr sets an extended attribute of the open file.
func (f *File) SetXattr(x Xattr) error {
	if err := unix.Fsetxattr(f.fd, x.Name, x.Value, 0); err != nil {
		return pathError("set xattr "+x.Name, f.path, err)
	}
	return nil
}

// SetXattr sets an extended attribute of the directory itself.
func (d *Dir) SetXattr(x Xattr) error {
	if err := unix.Fsetxattr(d.fd, x.Name, x.Value, 0); err != nil {
		return pathError("set xattr "+x.Name, d.path, err)
	}
	return nil
}

// xattrValue reads a value with get (a getxattr call into buf), growing
// the buffer when the value is larger than it; get(nil) returns the size.
func xattrValue(get func(buf []byte) (int, error)) ([]byte, error) {
	for size := 256; ; {
		buf := make([]byte, size)
		n, err := get(buf)
		if err == unix.ERANGE {
			if size, err = get(nil); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func sortXattrs(xs []Xattr) {
	sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
}
