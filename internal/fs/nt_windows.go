package fs

import (
	"errors"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Information classes of NtQueryInformationFile and NtSetInformationFile
// that golang.org/x/sys/windows does not name.
const (
	fileLinkInformationClass         = 11
	fileAttributeTagInformationClass = 35
	ioReparseTagAFUnix               = 0x80000023
)

// fileBasicInfo is FILE_BASIC_INFO (FileBasicInformation): times in 100 ns
// units since 1601, 0 meaning "leave alone" when set.
type fileBasicInfo struct {
	CreationTime   int64
	LastAccessTime int64
	LastWriteTime  int64
	ChangeTime     int64
	FileAttributes uint32
	_              uint32
}

// fileAttributeTagInfo is FILE_ATTRIBUTE_TAG_INFORMATION.
type fileAttributeTagInfo struct {
	FileAttributes uint32
	ReparseTag     uint32
}

// fileLinkInfo is FILE_LINK_INFORMATION: the new name of a hard link,
// relative to RootDirectory.
type fileLinkInfo struct {
	ReplaceIfExists uint32 // a BOOLEAN in a union with a ULONG
	RootDirectory   windows.Handle
	FileNameLength  uint32 // in bytes
	FileName        [windows.MAX_PATH]uint16
}

var errBadName = errors.New("invalid entry name")

// checkName refuses what is not a single entry name: NtCreateFile would
// treat a backslash as a separator, so a name could otherwise reach
// outside the directory.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `\/`) {
		return errBadName
	}
	return nil
}

// ntOpen opens name relative to the directory handle root with
// NtCreateFile, the handle-relative open Windows offers (openat's
// counterpart). FILE_OPEN_REPARSE_POINT opens a symlink or junction itself
// instead of following it. Sharing is as permissive as possible, so a
// backup does not get in the way of other programs.
func ntOpen(root windows.Handle, name string, access, disposition, options uint32) (windows.Handle, error) {
	if err := checkName(name); err != nil {
		return windows.InvalidHandle, err
	}
	uname, err := windows.NewNTUnicodeString(name)
	if err != nil {
		return windows.InvalidHandle, err
	}
	oa := windows.OBJECT_ATTRIBUTES{RootDirectory: root, ObjectName: uname, Attributes: windows.OBJ_CASE_INSENSITIVE}
	oa.Length = uint32(unsafe.Sizeof(oa))
	var h windows.Handle
	var iosb windows.IO_STATUS_BLOCK
	err = windows.NtCreateFile(&h, access|windows.SYNCHRONIZE, &oa, &iosb, nil, windows.FILE_ATTRIBUTE_NORMAL,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, disposition,
		options|windows.FILE_SYNCHRONOUS_IO_NONALERT|windows.FILE_OPEN_REPARSE_POINT|windows.FILE_OPEN_FOR_BACKUP_INTENT, 0, 0)
	if err != nil {
		return windows.InvalidHandle, ntError(err)
	}
	return h, nil
}

// ntError turns an NTSTATUS into the Win32 error the rest of Go knows, so
// errors.Is(err, ErrExist) and friends work.
func ntError(err error) error {
	st, ok := err.(windows.NTStatus)
	if !ok {
		return err
	}
	switch st {
	case windows.STATUS_OBJECT_NAME_COLLISION:
		return windows.ERROR_ALREADY_EXISTS
	case windows.STATUS_NOT_A_DIRECTORY:
		return syscall.ENOTDIR
	case windows.STATUS_FILE_IS_A_DIRECTORY:
		return syscall.EISDIR
	}
	return st.Errno()
}

// queryInfo reads one information class of an open handle.
func queryInfo(h windows.Handle, class uint32, buf unsafe.Pointer, size uintptr) error {
	var iosb windows.IO_STATUS_BLOCK
	if err := windows.NtQueryInformationFile(h, &iosb, (*byte)(buf), uint32(size), class); err != nil {
		return ntError(err)
	}
	return nil
}
