package fs

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

const (
	sizeofTagInfo   = unsafe.Sizeof(fileAttributeTagInfo{})
	sizeofBasicInfo = unsafe.Sizeof(fileBasicInfo{})
)

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// isLinkTag reports whether a reparse tag makes an entry a link: symlinks
// and junctions (mount points) are reported as symlinks and never
// followed. Other reparse points (deduplicated or cloud files) are what
// their attributes say.
func isLinkTag(tag uint32) bool {
	return tag == windows.IO_REPARSE_TAG_SYMLINK || tag == windows.IO_REPARSE_TAG_MOUNT_POINT
}

// statHandle reads the metadata of an open handle: identity and link count
// from GetFileInformationByHandle, the change time (which it lacks) from
// FileBasicInformation, and the reparse tag for the type.
func statHandle(h windows.Handle) (Stat, error) {
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
		return Stat{}, err
	}
	var bi fileBasicInfo
	if err := queryInfo(h, windows.FileBasicInformation, unsafePointer(&bi), sizeofBasicInfo); err != nil {
		return Stat{}, err
	}
	var tag uint32
	if fi.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
		var ti fileAttributeTagInfo
		if err := queryInfo(h, fileAttributeTagInformationClass, unsafePointer(&ti), sizeofTagInfo); err != nil {
			return Stat{}, err
		}
		tag = ti.ReparseTag
	}
	return Stat{
		Mode:  synthMode(fi.FileAttributes, tag),
		Ino:   uint64(fi.FileIndexHigh)<<32 | uint64(fi.FileIndexLow),
		Dev:   uint64(fi.VolumeSerialNumber),
		Nlink: uint64(fi.NumberOfLinks),
		Size:  int64(fi.FileSizeHigh)<<32 | int64(fi.FileSizeLow),
		MTime: fi.LastWriteTime.Nanoseconds(),
		CTime: filetimeNs(bi.ChangeTime),
	}, nil
}

// synthMode makes a Unix mode from Windows attributes, as Go's os package
// does: 0o666 for files (0o444 when read-only), plus 0o111 for
// directories; links get 0o777.
func synthMode(attrs, tag uint32) uint32 {
	if attrs&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
		switch {
		case isLinkTag(tag):
			return TypeSymlink | 0o777
		case tag == ioReparseTagAFUnix:
			return TypeSocket | 0o666
		}
	}
	perm := uint32(0o666)
	if attrs&windows.FILE_ATTRIBUTE_READONLY != 0 {
		perm = 0o444
	}
	if attrs&windows.FILE_ATTRIBUTE_DIRECTORY != 0 {
		return TypeDir | perm | 0o111
	}
	return TypeRegular | perm
}

// filetimeNs converts a FILETIME held in an int64 to ns since 1970.
func filetimeNs(t int64) int64 {
	ft := windows.Filetime{LowDateTime: uint32(t), HighDateTime: uint32(uint64(t) >> 32)}
	return ft.Nanoseconds()
}
