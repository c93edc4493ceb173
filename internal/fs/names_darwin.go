package fs

import (
	"os"
	"sort"
)

// Names lists the directory, sorted bytewise, without "." and "..". It
// reads the directory from its current position: call it once per Dir.
//
// macOS has no getdents; the C library's readdir (through os.File, on a
// duplicate of the descriptor, so d stays open) does the listing.
func (d *Dir) Names() ([]string, error) {
	fd, err := dup(d.fd)
	if err != nil {
		return nil, pathError("list directory", d.path, err)
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, pathError("list directory", d.path, unwrapPathError(err))
	}
	sort.Strings(names)
	return names, nil
}

// unwrapPathError returns the cause of an *os.PathError from the os
// package, so that it can be wrapped again with this package's operation.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
