// Package backend defines the small storage interface a repository is
// written through. Implementations store opaque, write-once objects by
// (type, name); they know nothing about packs, keys or encryption, which is
// what lets the same repository live on a local disk, an SFTP host or an
// S3 bucket.
package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// FileType is the kind of stored object; it selects a namespace.
type FileType string

// The object namespaces of a repository.
const (
	Config   FileType = "config"
	Key      FileType = "keys"
	Data     FileType = "data"  // packs of file content
	Tree     FileType = "trees" // packs of directory trees (cached locally)
	Index    FileType = "index"
	Snapshot FileType = "snapshots"
	Lock     FileType = "locks"
)

// AllTypes lists every namespace, in a fixed order.
var AllTypes = []FileType{Config, Key, Data, Tree, Index, Snapshot, Lock}

// Handle names one stored object. Config has the empty name.
type Handle struct {
	Type FileType
	Name string
}

func (h Handle) String() string {
	if h.Name == "" {
		return string(h.Type)
	}
	return string(h.Type) + "/" + h.Name
}

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned (wrapped) by Save when the object already exists.
var ErrExists = errors.New("already exists")

// ErrInvalidName is returned (wrapped) for a handle no backend may store:
// retrying cannot fix it.
var ErrInvalidName = errors.New("invalid object name")

// ErrShortObject is returned (wrapped, with io.ErrUnexpectedEOF) when an
// object holds fewer bytes than the range read: the stored object is
// short, which retrying cannot fix (unlike a transfer cut off midway).
var ErrShortObject = errors.New("object shorter than the range read")

// Sharded reports whether objects of type t are spread over 256
// subdirectories named by their first two characters, so that no
// directory grows to millions of entries.
func Sharded(t FileType) bool { return t == Data || t == Tree }

// ObjectPath returns the slash-separated path of h relative to the
// repository root, the same in every backend so that a repository can be
// copied between them. It rejects names that could escape their namespace
// or collide with temporary files (which start with a dot).
func ObjectPath(h Handle) (string, error) {
	if h.Type == Config {
		return "config", nil
	}
	known := false
	for _, t := range AllTypes {
		known = known || t == h.Type
	}
	n := h.Name
	switch {
	case !known:
		return "", fmt.Errorf("%w: unknown object type %q", ErrInvalidName, h.Type)
	case n == "" || strings.ContainsAny(n, "/\\\x00") || strings.HasPrefix(n, "."):
		return "", fmt.Errorf("%w: %q", ErrInvalidName, n)
	case Sharded(h.Type):
		if len(n) < 2 {
			return "", fmt.Errorf("%w: %q", ErrInvalidName, n)
		}
		return string(h.Type) + "/" + n[:2] + "/" + n, nil
	}
	return string(h.Type) + "/" + n, nil
}

// Backend stores objects. Implementations must make Save atomic (a reader
// never sees a partial object under its final name) and safe for concurrent
// use.
type Backend interface {
	// Location describes the backend for messages.
	Location() string
	// Save stores data under h. It fails with ErrExists if h exists.
	Save(ctx context.Context, h Handle, data []byte) error
	// Load reads length bytes at offset of h; length 0 reads to the end.
	Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error)
	// Stat returns the size of h.
	Stat(ctx context.Context, h Handle) (int64, error)
	// List calls fn for every object of type t.
	List(ctx context.Context, t FileType, fn func(name string, size int64) error) error
	// Remove deletes h.
	Remove(ctx context.Context, h Handle) error
	// Close releases resources.
	Close() error
}

// LoadAll reads a whole object.
func LoadAll(ctx context.Context, b Backend, h Handle) ([]byte, error) {
	return b.Load(ctx, h, 0, 0)
}
