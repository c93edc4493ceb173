package fs

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// Chown fails with ErrNotSupported on Windows: owners are security
// descriptors there (a later issue).
func (f *File) Chown(uid, gid uint32) error { return notSupported("chown", f.path) }

// Chown fails with ErrNotSupported on Windows.
func (d *Dir) Chown(uid, gid uint32) error { return notSupported("chown", d.path) }

// Lchown fails with ErrNotSupported on Windows.
func (d *Dir) Lchown(name string, uid, gid uint32) error {
	return notSupported("chown", joinPath(d.path, name))
}

// Chmod maps the owner's write bit of mode to the read-only attribute of
// the open file, the one permission Windows attributes express.
func (f *File) Chmod(mode uint32) error {
	if err := setReadOnly(f.handle(), mode); err != nil {
		return pathError("chmod", f.path, err)
	}
	return nil
}

// Chmod does nothing to a directory on Windows: the read-only attribute
// does not make a directory read-only there (Explorer takes it to mean a
// customized folder), and directories have no other mode.
func (d *Dir) Chmod(mode uint32) error { return nil }

// Lchmod maps the owner's write bit of mode to the read-only attribute of
// the entry name, not following a link; directories are left alone (see
// Dir.Chmod).
func (d *Dir) Lchmod(name string, mode uint32) error {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, windows.FILE_READ_ATTRIBUTES|windows.FILE_WRITE_ATTRIBUTES, windows.FILE_OPEN, 0)
	if err != nil {
		return pathError("chmod", p, err)
	}
	defer windows.CloseHandle(h)
	if err := setReadOnly(h, mode); err != nil {
		return pathError("chmod", p, err)
	}
	return nil
}

func setReadOnly(h windows.Handle, mode uint32) error {
	var ti fileAttributeTagInfo
	if err := queryInfo(h, fileAttributeTagInformationClass, unsafePointer(&ti), sizeofTagInfo); err != nil {
		return err
	}
	if ti.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 {
		return nil
	}
	attrs := ti.FileAttributes &^ windows.FILE_ATTRIBUTE_READONLY
	if mode&0o200 == 0 {
		attrs |= windows.FILE_ATTRIBUTE_READONLY
	}
	if attrs == ti.FileAttributes {
		return nil
	}
	return setAttributes(h, attrs)
}

// setAttributes replaces the attributes of h, leaving its times alone.
func setAttributes(h windows.Handle, attrs uint32) error {
	if attrs == 0 {
		attrs = windows.FILE_ATTRIBUTE_NORMAL // 0 would mean "leave alone"
	}
	bi := fileBasicInfo{FileAttributes: attrs}
	return windows.SetFileInformationByHandle(h, windows.FileBasicInfo, (*byte)(unsafe.Pointer(&bi)), uint32(sizeofBasicInfo))
}

// SetMtime sets the modification time (ns since the epoch) of the entry
// name, not following a link; the other times are left alone.
func (d *Dir) SetMtime(name string, mtime int64) error {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, windows.FILE_WRITE_ATTRIBUTES, windows.FILE_OPEN, 0)
	if err != nil {
		return pathError("set mtime", p, err)
	}
	defer windows.CloseHandle(h)
	ft := windows.NsecToFiletime(mtime)
	if err := windows.SetFileTime(h, nil, nil, &ft); err != nil {
		return pathError("set mtime", p, err)
	}
	return nil
}
