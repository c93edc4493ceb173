// Package blob defines the identifiers shared by every layer of a Tidemark
// repository: blob IDs and blob types.
package blob

import (
	"encoding/hex"
	"fmt"
)

// IDSize is the length of an ID in bytes.
const IDSize = 32

// ID names a blob, tree, pack, index or snapshot by content. Blob and tree
// IDs are keyed hashes (the key is the repository's secret), so they do not
// reveal plaintext hashes; file names of stored objects are plain SHA-256
// hashes of the stored bytes, so integrity can be checked without the key.
type ID [IDSize]byte

// Null is the zero ID, used for "no ID".
var Null ID

// String returns the ID as lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first eight hex digits, for messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsNull reports whether id is the zero ID.
func (id ID) IsNull() bool { return id == Null }

// ParseID parses a 64-digit hex string.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid ID %q: want %d hex digits", s, 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler so IDs appear as hex in JSON.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// Type says what a blob holds.
type Type uint8

const (
	// Data is a chunk of file content.
	Data Type = 1
	// Tree is an encoded directory.
	Tree Type = 2
)

func (t Type) String() string {
	switch t {
	case Data:
		return "data"
	case Tree:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}
