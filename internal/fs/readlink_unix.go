//go:build linux || darwin

package fs

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Readlink returns the target of the symlink name.
func (d *Dir) Readlink(name string) (string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(d.fd, name, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return "", pathError("read symlink", joinPath(d.path, name), err)
		case n < size:
			return string(buf[:n]), nil
		case size > 1<<20:
			return "", pathError("read symlink", joinPath(d.path, name), errors.New("target too long"))
		}
		size *= 2
	}
}
