//go:build !linux

package changes

import (
	"context"
	"errors"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	Log          func(format string, args ...any)
	ForceInotify bool
}

// Watch is only implemented on Linux.
func Watch(ctx context.Context, stateDir string, roots []string, opt WatchOptions) error {
	return errors.New("tidemark watch: only supported on Linux")
}
