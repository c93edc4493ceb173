//go:build !unix

package repo

import (
	"io"
	"os"
)

// mapFile reads f whole where memory mapping is not wired up.
func mapFile(f *os.File) ([]byte, func() error, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
