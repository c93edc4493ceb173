package fs

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// File is an open file: one opened for reading by [Dir.OpenFile] or one
// created for writing by [Dir.CreateFile]. On Windows it wraps an *os.File
// made from the handle NtCreateFile returned.
type File struct {
	f    *os.File
	path string
}

// Name returns the path of the file, for messages.
func (f *File) Name() string { return f.path }

func (f *File) handle() windows.Handle { return windows.Handle(f.f.Fd()) }

// OpenFile opens the regular file name for reading, never following a
// symlink or junction there. Windows has no O_NOATIME.
func (d *Dir) OpenFile(name string) (*File, error) {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, windows.FILE_GENERIC_READ, windows.FILE_OPEN, windows.FILE_NON_DIRECTORY_FILE|windows.FILE_SEQUENTIAL_ONLY)
	if err != nil {
		return nil, pathError("open", p, err)
	}
	// FILE_OPEN_REPARSE_POINT opened a file symlink itself; refuse it, as
	// O_NOFOLLOW does.
	var ti fileAttributeTagInfo
	if err := queryInfo(h, fileAttributeTagInformationClass, unsafePointer(&ti), sizeofTagInfo); err != nil {
		windows.CloseHandle(h)
		return nil, pathError("open", p, err)
	}
	if ti.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 && isLinkTag(ti.ReparseTag) {
		windows.CloseHandle(h)
		return nil, pathError("open", p, syscall.ELOOP)
	}
	return &File{f: os.NewFile(uintptr(h), p), path: p}, nil
}

// Read reads up to len(p) bytes; it returns io.EOF at the end.
func (f *File) Read(p []byte) (int, error) { return f.f.Read(p) }

// WriteAt writes all of b at offset off.
func (f *File) WriteAt(b []byte, off int64) (int, error) { return f.f.WriteAt(b, off) }

// Truncate sets the size of the file. Windows files are not made sparse
// here, so extending one writes zeros.
func (f *File) Truncate(size int64) error { return f.f.Truncate(size) }

// Stat returns the metadata of the open file.
func (f *File) Stat() (Stat, error) {
	st, err := statHandle(f.handle())
	if err != nil {
		return Stat{}, pathError("fstat", f.path, err)
	}
	return st, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }
