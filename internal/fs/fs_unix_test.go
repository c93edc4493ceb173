//go:build linux || darwin

package fs

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The portable type constants are the system's S_IF* values, so Stat.Mode
// is the kernel's st_mode unchanged.
func TestTypeConstantsMatchSystem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ours, sys uint32
	}{
		{"TypeMask", TypeMask, unix.S_IFMT},
		{"TypeSocket", TypeSocket, unix.S_IFSOCK},
		{"TypeSymlink", TypeSymlink, unix.S_IFLNK},
		{"TypeRegular", TypeRegular, unix.S_IFREG},
		{"TypeBlockDev", TypeBlockDev, unix.S_IFBLK},
		{"TypeDir", TypeDir, unix.S_IFDIR},
		{"TypeCharDev", TypeCharDev, unix.S_IFCHR},
		{"TypeFifo", TypeFifo, unix.S_IFIFO},
	} {
		if tc.ours != tc.sys {
			t.Errorf("%s = %#o, system %#o", tc.name, tc.ours, tc.sys)
		}
	}
}
