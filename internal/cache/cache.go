// Package cache keeps local copies of the repository objects a backup reads
// often and cannot afford to download each time: tree packs, index files
// and snapshot records. Objects are immutable and named by content, so a
// cached copy never goes stale; a damaged one is evicted and fetched again
// by the repository layer. The cache can be deleted at any time.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tidemark/tidemark/internal/backend"
)

// DefaultDir returns the cache root: $XDG_CACHE_HOME/tidemark, else
// ~/.cache/tidemark.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "tidemark"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory: %w (set --cache-dir)", err)
	}
	return filepath.Join(home, ".cache", "tidemark"), nil
}

// Backend is a caching wrapper around another backend.
type Backend struct {
	backend.Backend
	dir string
}

// cached says which object types are kept locally.
func cached(t backend.FileType) bool {
	return t == backend.Tree || t == backend.Index || t == backend.Snapshot
}

// Wrap returns be with a cache in dir (created if needed).
func Wrap(be backend.Backend, dir string) (*Backend, error) {
	for _, t := range []backend.FileType{backend.Tree, backend.Index, backend.Snapshot} {
		if err := os.MkdirAll(filepath.Join(dir, string(t)), 0o700); err != nil {
			return nil, fmt.Errorf("create cache %s: %w", dir, err)
		}
	}
	return &Backend{Backend: be, dir: dir}, nil
}

func (c *Backend) path(h backend.Handle) string {
	return filepath.Join(c.dir, string(h.Type), filepath.Base(h.Name))
}

// Save stores h in the backend, then in the cache.
func (c *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := c.Backend.Save(ctx, h, data); err != nil {
		return err
	}
	if cached(h.Type) {
		c.put(h, data)
	}
	return nil
}

// put writes a cache file atomically; failures only cost a later download.
func (c *Backend) put(h backend.Handle, data []byte) {
	p := c.path(h)
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// Load reads from the cache, filling it from the backend on a miss.
func (c *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	if !cached(h.Type) {
		return c.Backend.Load(ctx, h, offset, length)
	}
	if data, err := c.readLocal(h, offset, length); err == nil {
		return data, nil
	}
	all, err := backend.LoadAll(ctx, c.Backend, h)
	if err != nil {
		return nil, err
	}
	c.put(h, all)
	if offset > int64(len(all)) || (length > 0 && offset+length > int64(len(all))) {
		return nil, fmt.Errorf("load %s: range %d+%d beyond size %d: %w", h, offset, length, len(all), io.ErrUnexpectedEOF)
	}
	if length == 0 {
		return all[offset:], nil
	}
	return all[offset : offset+length], nil
}

func (c *Backend) readLocal(h backend.Handle, offset, length int64) ([]byte, error) {
	f, err := os.Open(c.path(h))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if length == 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		length = fi.Size() - offset
		if length < 0 {
			return nil, io.ErrUnexpectedEOF
		}
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, offset); err != nil {
		return nil, err
	}
	return buf, nil
}

// Remove deletes h from the backend and the cache.
func (c *Backend) Remove(ctx context.Context, h backend.Handle) error {
	c.Evict(h)
	return c.Backend.Remove(ctx, h)
}

// Evict drops the cached copy of h.
func (c *Backend) Evict(h backend.Handle) {
	if cached(h.Type) {
		if err := os.Remove(c.path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
}
