package fs

import (
	"encoding/binary"
	"sort"
	"syscall"

	"golang.org/x/sys/windows"
)

// Offsets in FILE_FULL_DIR_INFO.
const (
	fullDirInfoNameLength = 60
	fullDirInfoName       = 68
)

// Names lists the directory, sorted bytewise, without "." and "..". It
// reads the directory from its current position: call it once per Dir.
func (d *Dir) Names() ([]string, error) {
	buf := make([]byte, 64<<10)
	var names []string
	var u16 []uint16
	for {
		err := windows.GetFileInformationByHandleEx(d.h, windows.FileFullDirectoryInfo, &buf[0], uint32(len(buf)))
		if err == windows.ERROR_NO_MORE_FILES {
			break
		}
		if err != nil {
			return nil, pathError("list directory", d.path, err)
		}
		for off := 0; off+fullDirInfoName <= len(buf); {
			e := buf[off:]
			next := int(binary.LittleEndian.Uint32(e))
			n := int(binary.LittleEndian.Uint32(e[fullDirInfoNameLength:])) / 2
			if fullDirInfoName+2*n > len(e) {
				break // malformed; never seen, but do not read past the buffer
			}
			u16 = u16[:0]
			for i := 0; i < n; i++ {
				u16 = append(u16, binary.LittleEndian.Uint16(e[fullDirInfoName+2*i:]))
			}
			if name := syscall.UTF16ToString(u16); name != "." && name != ".." {
				names = append(names, name)
			}
			if next == 0 {
				break
			}
			off += next
		}
	}
	sort.Strings(names)
	return names, nil
}
