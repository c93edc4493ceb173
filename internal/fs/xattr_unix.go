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
