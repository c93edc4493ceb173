// Package local stores a repository in a directory on a local filesystem.
//
// Writes go to a temporary file in the same directory, are fsynced, then
// linked into place, so an object is either complete under its final name
// or absent: a crash leaves at most a stray temporary file.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/tidemark/tidemark/internal/backend"
)

// Backend is a repository directory.
type Backend struct {
	dir string
	// noSync skips fsync: for tests that check content, not durability.
	noSync bool
}

// WithoutSync returns b writing without fsync. Only tests that do not
// check crash safety use it; a real repository must be durable.
func (b *Backend) WithoutSync() *Backend {
	c := *b
	c.noSync = true
	return &c
}

// ErrNotDirectory is returned by Open when the location is not a
// directory, or lies below a file: no repository can be there.
var ErrNotDirectory = errors.New("not a directory")

// Open opens an existing repository directory.
func Open(dir string) (*Backend, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("repository %s: a component of the path is a file, %w", dir, ErrNotDirectory)
	case err != nil:
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	case fi.Mode().IsRegular():
		return nil, fmt.Errorf("repository %s is a file, %w", dir, ErrNotDirectory)
	case !fi.IsDir():
		return nil, fmt.Errorf("repository %s is %w", dir, ErrNotDirectory)
	}
	return &Backend{dir: dir}, nil
}

// Create makes the directory layout of a new repository. The directory may
// exist but must be empty.
func Create(dir string) (*Backend, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create repository %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create repository %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("create repository %s: directory is not empty", dir)
	}
	for _, t := range backend.AllTypes {
		if t == backend.Config {
			continue
		}
		if err := os.Mkdir(filepath.Join(dir, string(t)), 0o700); err != nil {
			return nil, fmt.Errorf("create repository %s: %w", dir, err)
		}
	}
	return &Backend{dir: dir}, nil
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.dir }

func (b *Backend) path(h backend.Handle) (string, error) {
	p, err := backend.ObjectPath(h)
	if err != nil {
		return "", err
	}
	return filepath.Join(b.dir, filepath.FromSlash(p)), nil
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.path(h)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) && backend.Sharded(h.Type) {
		// Shard directories are made when first used.
		if err = os.Mkdir(filepath.Dir(p), 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			tmp, err = os.CreateTemp(filepath.Dir(p), ".tmp-*")
		}
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := b.sync(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("save %s: %w", h, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	// Objects are read-only once written; a link fails rather than replace.
	_ = os.Chmod(tmp.Name(), 0o400)
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("save %s: %w", h, backend.ErrExists)
		}
		return fmt.Errorf("save %s: %w", h, err)
	}
	if b.noSync {
		return nil
	}
	return syncDir(filepath.Dir(p))
}

func (b *Backend) sync(f *os.File) error {
	if b.noSync {
		return nil
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load %s: %w", h, backend.ErrNotFound)
		}
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	defer f.Close()
	if length == 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", h, err)
		}
		length = fi.Size() - offset
		if length < 0 {
			return nil, fmt.Errorf("load %s: %w: offset %d beyond size %d", h, backend.ErrShortObject, offset, fi.Size())
		}
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
		if errors.Is(err, io.EOF) {
			return buf[:n], fmt.Errorf("load %s: %w (%d of %d bytes at %d): %w", h, backend.ErrShortObject, n, length, offset, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	return buf, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (int64, error) {
	p, err := b.path(h)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("stat %s: %w", h, backend.ErrNotFound)
		}
		return 0, fmt.Errorf("stat %s: %w", h, err)
	}
	return fi.Size(), nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(string, int64) error) error {
	dirs := []string{filepath.Join(b.dir, string(t))}
	if backend.Sharded(t) {
		dirs = dirs[:0]
		for i := 0; i < 256; i++ {
			dirs = append(dirs, filepath.Join(b.dir, string(t), fmt.Sprintf("%02x", i)))
		}
	}
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("list %s: %w", t, err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return fmt.Errorf("list %s: %w", t, err)
			}
			if err := fn(e.Name(), fi.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	p, err := b.path(h)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", h, backend.ErrNotFound)
		}
		return fmt.Errorf("remove %s: %w", h, err)
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return nil }
