//go:build !windows

package repo

import "os"

// openShared opens an index table for reading. A new table may be renamed
// over it meanwhile: the open file stays the old one.
func openShared(path string) (*os.File, error) { return os.Open(path) }
