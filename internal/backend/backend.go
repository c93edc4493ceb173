// Package backend defines the small storage interface a repository is
// written through. Implementations store opaque, write-once objects by
// (type, name); they know nothing about packs, keys or encryption, which is
// what lets the same repository live on a local disk, an SFTP host or an
// S3 bucket.
package backend

import (
	"context"
	"errors"
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
