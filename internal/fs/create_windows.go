package fs

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Mkdir creates the directory name. perm is not applied: Windows
// directories have no mode. An existing entry of any kind fails with an
// error matching ErrExist.
func (d *Dir) Mkdir(name string, perm uint32) error {
	h, err := ntOpen(d.h, name, windows.FILE_LIST_DIRECTORY, windows.FILE_CREATE, windows.FILE_DIRECTORY_FILE)
	if err != nil {
		return pathError("create directory", joinPath(d.path, name), err)
	}
	windows.CloseHandle(h)
	return nil
}

// CreateFile creates the regular file name for writing. It never opens an
// existing entry: one there, a link included, fails with an error matching
// ErrExist. perm is applied by Chmod, once the file is written.
func (d *Dir) CreateFile(name string, perm uint32) (*File, error) {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, windows.FILE_GENERIC_READ|windows.FILE_GENERIC_WRITE, windows.FILE_CREATE, windows.FILE_NON_DIRECTORY_FILE)
	if err != nil {
		return nil, pathError("create file", p, err)
	}
	// Writes through this handle must not update the modification time:
	// NTFS would otherwise stamp it when the handle is closed, over the
	// one a restore sets (through another handle) before closing it. A
	// last-write time of all ones tells Windows to stop those updates; a
	// filesystem that ignores it merely leaves the later stamp.
	noUpdate := windows.Filetime{LowDateTime: 0xFFFFFFFF, HighDateTime: 0xFFFFFFFF}
	_ = windows.SetFileTime(h, nil, nil, &noUpdate)
	return &File{f: os.NewFile(uintptr(h), p), path: p}, nil
}

// Symlink creates the symlink name pointing to target (slashes become
// backslashes; a target that is a directory gets a directory symlink). It
// needs the privilege to create symlinks or Developer Mode.
//
// CreateSymbolicLinkW has no handle-relative form, so this goes through the
// directory's path: unlike every other call here, it relies on no ancestor
// having been replaced by a link since the directory was opened.
func (d *Dir) Symlink(target, name string) error {
	p := joinPath(d.path, name)
	if err := checkName(name); err != nil {
		return pathError("create symlink", p, err)
	}
	if err := os.Symlink(target, p); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return pathError("create symlink", p, err)
	}
	return nil
}

// Link creates newName in newDir as a hard link to oldName in oldDir,
// relative to both handles (FileLinkInformation), without following a
// link at oldName. An existing entry at newName fails with an error
// matching ErrExist.
func Link(oldDir *Dir, oldName string, newDir *Dir, newName string) error {
	p := joinPath(newDir.path, newName)
	if err := checkName(newName); err != nil {
		return pathError("link", p, err)
	}
	h, err := ntOpen(oldDir.h, oldName, windows.FILE_WRITE_ATTRIBUTES, windows.FILE_OPEN, 0)
	if err != nil {
		return pathError("link", p, err)
	}
	defer windows.CloseHandle(h)
	u, err := windows.UTF16FromString(newName)
	if err != nil {
		return pathError("link", p, err)
	}
	u = u[:len(u)-1] // no terminating NUL: the length is given
	info := fileLinkInfo{RootDirectory: newDir.h, FileNameLength: uint32(2 * len(u))}
	if len(u) > len(info.FileName) {
		return pathError("link", p, syscall.ENAMETOOLONG)
	}
	copy(info.FileName[:], u)
	var iosb windows.IO_STATUS_BLOCK
	if err := windows.NtSetInformationFile(h, &iosb, (*byte)(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), fileLinkInformationClass); err != nil {
		return pathError("link", p, ntError(err))
	}
	return nil
}

// Remove removes the entry name, which must not be a directory; a symlink
// or junction is removed, not followed. A read-only file is removed too,
// as on Unix.
func (d *Dir) Remove(name string) error {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, windows.DELETE|windows.FILE_READ_ATTRIBUTES|windows.FILE_WRITE_ATTRIBUTES, windows.FILE_OPEN, 0)
	if err != nil {
		return pathError("remove", p, err)
	}
	defer windows.CloseHandle(h)
	var ti fileAttributeTagInfo
	if err := queryInfo(h, fileAttributeTagInformationClass, unsafePointer(&ti), sizeofTagInfo); err != nil {
		return pathError("remove", p, err)
	}
	isLink := ti.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 && isLinkTag(ti.ReparseTag)
	if ti.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 && !isLink {
		return pathError("remove", p, syscall.EISDIR)
	}
	if ti.FileAttributes&windows.FILE_ATTRIBUTE_READONLY != 0 {
		if err := setAttributes(h, ti.FileAttributes&^windows.FILE_ATTRIBUTE_READONLY); err != nil {
			return pathError("remove", p, err)
		}
	}
	del := struct{ DeleteFile bool }{true} // FILE_DISPOSITION_INFO
	if err := windows.SetFileInformationByHandle(h, windows.FileDispositionInfo, (*byte)(unsafe.Pointer(&del)), uint32(unsafe.Sizeof(del))); err != nil {
		return pathError("remove", p, err)
	}
	return nil
}
