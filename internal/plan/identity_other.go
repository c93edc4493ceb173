//go:build !unix

package plan

import (
	"fmt"
	"runtime"
)

// fileIdentity is not needed where no change source reports inodes.
func fileIdentity(path string) (dev, ino uint64, err error) {
	return 0, 0, fmt.Errorf("file identity of %s: not supported on this platform (%s)", path, runtime.GOOS)
}
