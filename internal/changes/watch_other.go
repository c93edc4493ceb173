//go:build !linux

package changes

import (
	"context"
	"errors"
)

// Watch is only implemented on Linux.
func Watch(ctx context.Context, stateDir string, roots []string, opt WatchOptions) error {
	return errors.New("tidemark watch: only supported on Linux")
}
