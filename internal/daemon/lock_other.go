//go:build !unix

package daemon

import (
	"fmt"
	"os"
)

// lockState opens the daemon's lock file. Without flock (Windows) it does
// not keep a second daemon out yet.
func lockState(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon lock: %w", err)
	}
	return f, nil
}
