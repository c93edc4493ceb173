//go:build linux || darwin

package fs

import (
	"errors"
	"io"

	"golang.org/x/sys/unix"
)

// File is an open file: one opened for reading by [Dir.OpenFile] or one
// created for writing by [Dir.CreateFile].
type File struct {
	fd   int
	path string
}

// Name returns the path of the file, for messages.
func (f *File) Name() string { return f.path }

// Fd returns the file descriptor, for system calls this package does not
// wrap. It stays owned by f.
func (f *File) Fd() uintptr { return uintptr(f.fd) }

// OpenFile opens the regular file name for reading, never following a
// symlink there and never blocking (should a fifo have been swapped in);
// on Linux without updating its access time where permitted. Callers check
// with Stat that it is still the regular file they listed.
func (d *Dir) OpenFile(name string) (*File, error) {
	fd, err := openForReading(d.fd, name)
	if err != nil {
		return nil, pathError("open", joinPath(d.path, name), err)
	}
	return &File{fd: fd, path: joinPath(d.path, name)}, nil
}

// Read reads up to len(p) bytes; it returns io.EOF at the end.
func (f *File) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, pathError("read", f.path, err)
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// WriteAt writes all of b at offset off.
func (f *File) WriteAt(b []byte, off int64) (int, error) {
	written := 0
	for len(b) > 0 {
		n, err := unix.Pwrite(f.fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, pathError("write", f.path, err)
		}
		if n == 0 {
			return written, pathError("write", f.path, io.ErrShortWrite)
		}
		b, off, written = b[n:], off+int64(n), written+n
	}
	return written, nil
}

// Truncate sets the size of the file; extending it leaves a hole where the
// filesystem supports them.
func (f *File) Truncate(size int64) error {
	for {
		err := unix.Ftruncate(f.fd, size)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathError("truncate", f.path, err)
		}
		return nil
	}
}

// Stat returns the metadata of the open file.
func (f *File) Stat() (Stat, error) {
	var st unix.Stat_t
	if err := fstat(f.fd, &st); err != nil {
		return Stat{}, pathError("fstat", f.path, err)
	}
	return fromUnix(&st), nil
}

// Close closes the file.
func (f *File) Close() error {
	if f.fd < 0 {
		return pathError("close", f.path, errors.New("already closed"))
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return pathError("close", f.path, err)
	}
	return nil
}
