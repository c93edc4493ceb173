package fs

import (
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/windows"
)

// Dir is an open directory. Names given to its methods are single entry
// names (no separators), and a symlink or junction at such a name is never
// followed.
//
// On Windows a Dir is a directory handle; entries are opened relative to it
// with NtCreateFile. It is safe for concurrent use, and must be closed
// once.
type Dir struct {
	h    windows.Handle
	path string // for messages and the few path-based calls
}

// Path returns the path of the directory.
func (d *Dir) Path() string { return d.path }

func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, `\`) {
		return dir + name
	}
	return dir + `\` + name
}

const (
	dirAccess = windows.FILE_LIST_DIRECTORY | windows.FILE_TRAVERSE | windows.FILE_READ_ATTRIBUTES
	shareAll  = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE
)

// OpenDir opens the directory at path p, which should be absolute (a
// relative one is taken from the working directory). A symlink or junction
// as its last component is refused; ones before it are followed.
func OpenDir(p string) (*Dir, error) { return openDirPath(p, true) }

// OpenDirFollow opens the directory at path p, following a
// symlink or junction as its last component too: a restore target may be
// a link to where the user wants the files.
func OpenDirFollow(p string) (*Dir, error) { return openDirPath(p, false) }

func openDirPath(p string, noFollow bool) (*Dir, error) {
	lp, err := longPath(p)
	if err != nil {
		return nil, pathError("open directory", p, err)
	}
	u, err := windows.UTF16PtrFromString(lp)
	if err != nil {
		return nil, pathError("open directory", p, err)
	}
	flags := uint32(windows.FILE_FLAG_BACKUP_SEMANTICS)
	if noFollow {
		flags |= windows.FILE_FLAG_OPEN_REPARSE_POINT
	}
	h, err := windows.CreateFile(u, dirAccess|windows.SYNCHRONIZE, shareAll, nil, windows.OPEN_EXISTING, flags, 0)
	if err != nil {
		return nil, pathError("open directory", p, err)
	}
	if err := checkDir(h); err != nil {
		windows.CloseHandle(h)
		return nil, pathError("open directory", p, err)
	}
	abs, _ := filepath.Abs(p) // longPath succeeded, so this does
	return &Dir{h: h, path: abs}, nil
}

// checkDir makes sure h is a directory and not a link to one (opened
// itself with FILE_OPEN_REPARSE_POINT), as O_DIRECTORY|O_NOFOLLOW would.
func checkDir(h windows.Handle) error {
	var ti fileAttributeTagInfo
	if err := queryInfo(h, fileAttributeTagInformationClass, unsafePointer(&ti), sizeofTagInfo); err != nil {
		return err
	}
	if ti.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY == 0 {
		return syscall.ENOTDIR
	}
	if ti.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 && isLinkTag(ti.ReparseTag) {
		return syscall.ELOOP
	}
	return nil
}

// OpenDir opens the subdirectory name, never following a symlink or
// junction there.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, dirAccess, windows.FILE_OPEN, windows.FILE_DIRECTORY_FILE)
	if err != nil {
		return nil, pathError("open directory", p, err)
	}
	if err := checkDir(h); err != nil {
		windows.CloseHandle(h)
		return nil, pathError("open directory", p, err)
	}
	return &Dir{h: h, path: p}, nil
}

// OpenDirPath opens the directory at the slash-separated path rel below d
// ("." for d itself), one component at a time, never following a symlink
// or junction. The result serves as the directory of Lstat and [Link]
// calls. Unlike on Linux it is an ordinary directory handle: restored
// directories get no restrictive mode on Windows, so listing access is
// always there.
func (d *Dir) OpenDirPath(rel string) (*Dir, error) {
	proc := windows.CurrentProcess()
	var h windows.Handle
	if err := windows.DuplicateHandle(proc, d.h, proc, &h, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return nil, pathError("open directory", d.path, err)
	}
	cur := &Dir{h: h, path: d.path}
	if rel == "." {
		return cur, nil
	}
	for _, name := range strings.Split(rel, "/") {
		next, err := cur.OpenDir(name)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// Stat returns the metadata of the directory itself.
func (d *Dir) Stat() (Stat, error) {
	st, err := statHandle(d.h)
	if err != nil {
		return Stat{}, pathError("stat", d.path, err)
	}
	return st, nil
}

// Lstat returns the metadata of the entry name, not following a symlink.
func (d *Dir) Lstat(name string) (Stat, error) {
	h, err := ntOpen(d.h, name, windows.FILE_READ_ATTRIBUTES, windows.FILE_OPEN, 0)
	if err != nil {
		return Stat{}, pathError("lstat", joinPath(d.path, name), err)
	}
	defer windows.CloseHandle(h)
	st, err := statHandle(h)
	if err != nil {
		return Stat{}, pathError("lstat", joinPath(d.path, name), err)
	}
	return st, nil
}

// Lstat returns the metadata of the entry at path p, not following a
// symlink or junction as its last component.
func Lstat(p string) (Stat, error) {
	lp, err := longPath(p)
	if err != nil {
		return Stat{}, pathError("lstat", p, err)
	}
	u, err := windows.UTF16PtrFromString(lp)
	if err != nil {
		return Stat{}, pathError("lstat", p, err)
	}
	h, err := windows.CreateFile(u, windows.FILE_READ_ATTRIBUTES|windows.SYNCHRONIZE, shareAll, nil, windows.OPEN_EXISTING,
		windows.FILE_FLAG_BACKUP_SEMANTICS|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return Stat{}, pathError("lstat", p, err)
	}
	defer windows.CloseHandle(h)
	st, err := statHandle(h)
	if err != nil {
		return Stat{}, pathError("lstat", p, err)
	}
	return st, nil
}

// Close closes the directory.
func (d *Dir) Close() error {
	if d.h == windows.InvalidHandle {
		return pathError("close", d.path, syscall.EINVAL)
	}
	err := windows.CloseHandle(d.h)
	d.h = windows.InvalidHandle
	if err != nil {
		return pathError("close", d.path, err)
	}
	return nil
}
