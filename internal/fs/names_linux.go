package fs

import (
	"sort"

	"golang.org/x/sys/unix"
)

// Names lists the directory, sorted bytewise, without "." and "..". It
// reads the directory from its current position: call it once per Dir.
func (d *Dir) Names() ([]string, error) {
	buf := make([]byte, 64<<10)
	var names []string
	for {
		n, err := unix.Getdents(d.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, pathError("list directory", d.path, err)
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	sort.Strings(names)
	return names, nil
}
