//go:build !linux

package changes

// mappedChanges finds nothing where no watcher runs: the journal, which it
// completes, is only written on Linux.
func mappedChanges([]string) (Delta, MappingScan, error) { return Delta{}, MappingScan{}, nil }
