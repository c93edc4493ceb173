package fs

import (
	"encoding/binary"
	"errors"
	"strings"
	"syscall"
	"unicode/utf16"

	"golang.org/x/sys/windows"
)

const symlinkFlagRelative = 1 // SYMLINK_FLAG_RELATIVE

// Readlink returns the target of the symlink or junction name, read from
// its reparse data.
func (d *Dir) Readlink(name string) (string, error) {
	p := joinPath(d.path, name)
	h, err := ntOpen(d.h, name, windows.FILE_READ_ATTRIBUTES, windows.FILE_OPEN, 0)
	if err != nil {
		return "", pathError("read symlink", p, err)
	}
	defer windows.CloseHandle(h)
	buf := make([]byte, windows.MAXIMUM_REPARSE_DATA_BUFFER_SIZE)
	var n uint32
	if err := windows.DeviceIoControl(h, windows.FSCTL_GET_REPARSE_POINT, nil, 0, &buf[0], uint32(len(buf)), &n, nil); err != nil {
		if err == windows.ERROR_NOT_A_REPARSE_POINT {
			err = syscall.EINVAL // as readlink(2) says of what is not a symlink
		}
		return "", pathError("read symlink", p, err)
	}
	target, err := parseReparseData(buf[:n])
	if err != nil {
		return "", pathError("read symlink", p, err)
	}
	return target, nil
}

var errReparseData = errors.New("unrecognized reparse data")

// parseReparseData reads the target out of a REPARSE_DATA_BUFFER of a
// symlink or junction: the substitute name, which is what the link
// resolves to (the print name is only for display and may be empty).
func parseReparseData(b []byte) (string, error) {
	if len(b) < 8 {
		return "", errReparseData
	}
	tag := binary.LittleEndian.Uint32(b)
	data := b[8:]
	if n := int(binary.LittleEndian.Uint16(b[4:])); n <= len(data) {
		data = data[:n]
	}
	var names []byte
	var flags uint32
	switch tag {
	case windows.IO_REPARSE_TAG_SYMLINK:
		if len(data) < 12 {
			return "", errReparseData
		}
		flags = binary.LittleEndian.Uint32(data[8:])
		names = data[12:]
	case windows.IO_REPARSE_TAG_MOUNT_POINT:
		if len(data) < 8 {
			return "", errReparseData
		}
		names = data[8:]
	default:
		return "", syscall.EINVAL // another kind of reparse point: not a link
	}
	off, length := int(binary.LittleEndian.Uint16(data)), int(binary.LittleEndian.Uint16(data[2:]))
	if off%2 != 0 || length%2 != 0 || off+length > len(names) {
		return "", errReparseData
	}
	u := make([]uint16, length/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(names[off+2*i:])
	}
	s := string(utf16.Decode(u))
	if flags&symlinkFlagRelative != 0 {
		return s, nil
	}
	// Absolute targets are NT paths: \??\C:\dir, \??\UNC\server\share,
	// \??\Volume{...}\. Turn them into what Win32 calls accept.
	rest, ok := strings.CutPrefix(s, `\??\`)
	switch {
	case !ok:
		return s, nil
	case strings.HasPrefix(rest, `UNC\`):
		return `\\` + rest[4:], nil
	case len(rest) >= 2 && rest[1] == ':':
		return rest, nil
	}
	return `\\?\` + rest, nil
}
