package fs

import (
	"path/filepath"
	"strings"
)

// longPath turns a path into its absolute \\?\ form, which lifts the
// MAX_PATH limit of the Win32 calls. Such paths are not parsed any further
// by Windows, so the path is made absolute and clean first. Everything
// below a Dir is reached relative to its handle and needs no such path.
func longPath(p string) (string, error) {
	if strings.HasPrefix(p, `\\?\`) {
		return p, nil
	}
	p, err := filepath.Abs(p) // cleans too
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(p, `\\`) {
		return `\\?\UNC\` + p[2:], nil // \\server\share\...
	}
	return `\\?\` + p, nil
}
