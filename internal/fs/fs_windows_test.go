package fs

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"unicode/utf16"

	"golang.org/x/sys/windows"
)

// reparseBuffer builds a REPARSE_DATA_BUFFER as FSCTL_GET_REPARSE_POINT
// returns it: the substitute name first, then the print name.
func reparseBuffer(tag uint32, subst, print string, flags uint32) []byte {
	s, p := utf16.Encode([]rune(subst)), utf16.Encode([]rune(print))
	var names []byte
	for _, u := range append(s, p...) {
		names = binary.LittleEndian.AppendUint16(names, u)
	}
	var data []byte
	data = binary.LittleEndian.AppendUint16(data, 0)
	data = binary.LittleEndian.AppendUint16(data, uint16(2*len(s)))
	data = binary.LittleEndian.AppendUint16(data, uint16(2*len(s)))
	data = binary.LittleEndian.AppendUint16(data, uint16(2*len(p)))
	if tag == windows.IO_REPARSE_TAG_SYMLINK {
		data = binary.LittleEndian.AppendUint32(data, flags)
	}
	data = append(data, names...)
	b := binary.LittleEndian.AppendUint32(nil, tag)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, data...)
}

func TestParseReparseData(t *testing.T) {
	for _, tc := range []struct {
		name string
		buf  []byte
		want string
		err  error
	}{
		{"relative symlink", reparseBuffer(windows.IO_REPARSE_TAG_SYMLINK, `dir\file`, `dir\file`, symlinkFlagRelative), `dir\file`, nil},
		{"absolute symlink", reparseBuffer(windows.IO_REPARSE_TAG_SYMLINK, `\??\C:\Users\x`, `C:\Users\x`, 0), `C:\Users\x`, nil},
		{"UNC symlink", reparseBuffer(windows.IO_REPARSE_TAG_SYMLINK, `\??\UNC\server\share\d`, `\\server\share\d`, 0), `\\server\share\d`, nil},
		{"junction", reparseBuffer(windows.IO_REPARSE_TAG_MOUNT_POINT, `\??\D:\data`, ``, 0), `D:\data`, nil},
		{"volume junction", reparseBuffer(windows.IO_REPARSE_TAG_MOUNT_POINT, `\??\Volume{0b1c}\`, ``, 0), `\\?\Volume{0b1c}\`, nil},
		{"other reparse point", append(binary.LittleEndian.AppendUint32(nil, 0x80000013), 0, 0, 0, 0), "", syscall.EINVAL},
		{"truncated", reparseBuffer(windows.IO_REPARSE_TAG_SYMLINK, `abc`, `abc`, 1)[:14], "", errReparseData},
		{"short", []byte{1, 2}, "", errReparseData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseReparseData(tc.buf)
			if got != tc.want || !errors.Is(err, tc.err) && err != tc.err {
				t.Errorf("parseReparseData = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestSynthMode(t *testing.T) {
	const reparse, dir, ro = windows.FILE_ATTRIBUTE_REPARSE_POINT, windows.FILE_ATTRIBUTE_DIRECTORY, windows.FILE_ATTRIBUTE_READONLY
	for _, tc := range []struct {
		name       string
		attrs, tag uint32
		want       uint32
	}{
		{"file", windows.FILE_ATTRIBUTE_ARCHIVE, 0, TypeRegular | 0o666},
		{"read-only file", ro, 0, TypeRegular | 0o444},
		{"directory", dir, 0, TypeDir | 0o777},
		{"file symlink", reparse, windows.IO_REPARSE_TAG_SYMLINK, TypeSymlink | 0o777},
		{"directory symlink", reparse | dir, windows.IO_REPARSE_TAG_SYMLINK, TypeSymlink | 0o777},
		{"junction", reparse | dir, windows.IO_REPARSE_TAG_MOUNT_POINT, TypeSymlink | 0o777},
		{"unix socket", reparse, ioReparseTagAFUnix, TypeSocket | 0o666},
		{"deduplicated file", reparse, 0x80000013, TypeRegular | 0o666},
	} {
		if got := synthMode(tc.attrs, tc.tag); got != tc.want {
			t.Errorf("%s: %#o, want %#o", tc.name, got, tc.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	dir := tempDir(t)
	d := openDir(t, dir)
	for _, name := range []string{"", ".", "..", `a\b`, "a/b", `..\x`} {
		if _, err := d.Lstat(name); !errors.Is(err, errBadName) {
			t.Errorf("Lstat(%q): %v, want %v", name, err, errBadName)
		}
		if err := d.Mkdir(name, 0o755); !errors.Is(err, errBadName) {
			t.Errorf("Mkdir(%q): %v, want %v", name, err, errBadName)
		}
	}
}
