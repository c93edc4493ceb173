package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/tidemark/tidemark/internal/blob"
)

// NodeType is the kind of filesystem object a node describes.
type NodeType uint8

// Node types.
const (
	File NodeType = iota + 1
	Dir
	Symlink
	BlockDev
	CharDev
	Fifo
	Socket
)

var typeNames = map[NodeType]string{File: "file", Dir: "dir", Symlink: "symlink", BlockDev: "blockdev", CharDev: "chardev", Fifo: "fifo", Socket: "socket"}

func (t NodeType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText implements encoding.TextMarshaler.
func (t NodeType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Xattr is one extended attribute.
type Xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Aggregates are totals over a subtree (not counting its own directory).
type Aggregates struct {
	Bytes uint64 `json:"bytes"`
	Files uint64 `json:"files"`
	Dirs  uint64 `json:"dirs"`
	Other uint64 `json:"other"` // symlinks, devices, fifos, sockets
}

// Add adds b to a.
func (a *Aggregates) Add(b Aggregates) {
	a.Bytes += b.Bytes
	a.Files += b.Files
	a.Dirs += b.Dirs
	a.Other += b.Other
}

// Node is one directory entry.
type Node struct {
	Name  string   `json:"name"`
	Type  NodeType `json:"type"`
	Mode  uint32   `json:"mode"` // permission bits, setuid, setgid, sticky
	UID   uint32   `json:"uid"`
	GID   uint32   `json:"gid"`
	MTime int64    `json:"mtime_ns"`
	// Size is the content length of a file.
	Size    uint64    `json:"size,omitempty"`
	Content []blob.ID `json:"content,omitempty"`
	// Subtree and Agg describe a directory's contents.
	Subtree blob.ID    `json:"subtree,omitzero"`
	Agg     Aggregates `json:"agg,omitzero"`
	Target  string     `json:"target,omitempty"` // symlink target
	Rdev    uint64     `json:"rdev,omitempty"`   // device number
	Xattrs  []Xattr    `json:"xattrs,omitempty"` // sorted by name
	// MultiLink is set when the file had more than one link at scan time.
	MultiLink bool `json:"multi_link,omitempty"`
	// HardLink, when set, is the snapshot path (slash-separated, relative
	// to the root tree) of the first entry, in depth-first order, of the
	// same inode: restore links this entry to it.
	HardLink string `json:"hard_link,omitempty"`
}

// Tree is one directory's entries, sorted by name.
type Tree struct {
	Nodes []Node
}

// Totals computes the aggregates of the tree's whole subtree.
func (t *Tree) Totals() Aggregates {
	var a Aggregates
	for i := range t.Nodes {
		a.Add(t.Nodes[i].Totals())
	}
	return a
}

// Totals returns what the node contributes to its parent's aggregates.
func (n *Node) Totals() Aggregates {
	switch n.Type {
	case File:
		return Aggregates{Bytes: n.Size, Files: 1}
	case Dir:
		a := n.Agg
		a.Dirs++
		return a
	}
	return Aggregates{Other: 1}
}

// Find returns the node called name, or nil.
func (t *Tree) Find(name string) *Node {
	lo, hi := 0, len(t.Nodes)
	for lo < hi {
		m := (lo + hi) / 2
		switch c := strings.Compare(t.Nodes[m].Name, name); {
		case c == 0:
			return &t.Nodes[m]
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return nil
}

// ErrInvalidTree marks a tree blob that decodes to something unsafe or
// inconsistent.
var ErrInvalidTree = errors.New("invalid tree")

// ValidName reports whether name can be used as a directory entry: the
// restorer relies on this to never write outside its target.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty entry name: %w", ErrInvalidTree)
	case name == "." || name == "..":
		return fmt.Errorf("entry name %q: %w", name, ErrInvalidTree)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("entry name %q contains '/' or NUL: %w", name, ErrInvalidTree)
	}
	return nil
}

const treeMagic = "TMT1"

const (
	flagXattrs = 1 << iota
	flagMultiLink
	flagHardLink
)

// Encode serializes the tree deterministically: equal trees give equal
// bytes, so equal directories get equal IDs.
func (t *Tree) Encode() []byte {
	buf := make([]byte, 0, 64+len(t.Nodes)*96)
	buf = append(buf, treeMagic...)
	buf = binary.AppendUvarint(buf, uint64(len(t.Nodes)))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		buf = appendString(buf, n.Name)
		buf = append(buf, byte(n.Type))
		buf = binary.AppendUvarint(buf, uint64(n.Mode))
		buf = binary.AppendUvarint(buf, uint64(n.UID))
		buf = binary.AppendUvarint(buf, uint64(n.GID))
		buf = binary.AppendVarint(buf, n.MTime)
		var flags byte
		if len(n.Xattrs) > 0 {
			flags |= flagXattrs
		}
		if n.MultiLink {
			flags |= flagMultiLink
		}
		if n.HardLink != "" {
			flags |= flagHardLink
		}
		buf = append(buf, flags)
		switch n.Type {
		case File:
			buf = binary.AppendUvarint(buf, n.Size)
			buf = binary.AppendUvarint(buf, uint64(len(n.Content)))
			for _, id := range n.Content {
				buf = append(buf, id[:]...)
			}
		case Dir:
			buf = append(buf, n.Subtree[:]...)
			buf = binary.AppendUvarint(buf, n.Agg.Bytes)
			buf = binary.AppendUvarint(buf, n.Agg.Files)
			buf = binary.AppendUvarint(buf, n.Agg.Dirs)
			buf = binary.AppendUvarint(buf, n.Agg.Other)
		case Symlink:
			buf = appendString(buf, n.Target)
		case BlockDev, CharDev:
			buf = binary.AppendUvarint(buf, n.Rdev)
		}
		if len(n.Xattrs) > 0 {
			buf = binary.AppendUvarint(buf, uint64(len(n.Xattrs)))
			for _, x := range n.Xattrs {
				buf = appendString(buf, x.Name)
				buf = binary.AppendUvarint(buf, uint64(len(x.Value)))
				buf = append(buf, x.Value...)
			}
		}
		if n.HardLink != "" {
			buf = appendString(buf, n.HardLink)
		}
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) failf(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format+": %w", append(args, ErrInvalidTree)...)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.failf("truncated %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u32(what string) uint32 {
	v := r.uvarint(what)
	if v > 1<<32-1 {
		r.failf("%s %d out of range", what, v)
	}
	return uint32(v)
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.failf("truncated %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string, n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.failf("truncated %s", what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str(what string) string { return string(r.bytes(what, r.uvarint(what+" length"))) }

func (r *reader) id(what string) (id blob.ID) {
	copy(id[:], r.bytes(what, blob.IDSize))
	return id
}

// DecodeTree parses and validates an encoded tree: entry names must be
// valid, unique and sorted, and types known.
func DecodeTree(data []byte) (*Tree, error) {
	if !bytes.HasPrefix(data, []byte(treeMagic)) {
		return nil, fmt.Errorf("bad tree header: %w", ErrInvalidTree)
	}
	r := &reader{b: data[len(treeMagic):]}
	count := r.uvarint("node count")
	if count > uint64(len(r.b)) {
		return nil, fmt.Errorf("node count %d exceeds data: %w", count, ErrInvalidTree)
	}
	t := &Tree{Nodes: make([]Node, 0, count)}
	for i := uint64(0); i < count && r.err == nil; i++ {
		var n Node
		n.Name = r.str("name")
		typ := r.bytes("type", 1)
		n.Mode = r.u32("mode")
		n.UID = r.u32("uid")
		n.GID = r.u32("gid")
		n.MTime = r.varint("mtime")
		fl := r.bytes("flags", 1)
		if r.err != nil {
			break
		}
		n.Type = NodeType(typ[0])
		flags := fl[0]
		if flags&^(flagXattrs|flagMultiLink|flagHardLink) != 0 {
			r.failf("entry %q: unknown flags %#x", n.Name, flags)
		}
		switch n.Type {
		case File:
			n.Size = r.uvarint("size")
			nc := r.uvarint("chunk count")
			if nc > uint64(len(r.b))/blob.IDSize {
				r.failf("entry %q: chunk count %d exceeds data", n.Name, nc)
				break
			}
			if nc > 0 {
				n.Content = make([]blob.ID, nc)
				for j := range n.Content {
					n.Content[j] = r.id("chunk ID")
				}
			}
		case Dir:
			n.Subtree = r.id("subtree ID")
			n.Agg = Aggregates{Bytes: r.uvarint("bytes"), Files: r.uvarint("files"), Dirs: r.uvarint("dirs"), Other: r.uvarint("other")}
		case Symlink:
			n.Target = r.str("symlink target")
		case BlockDev, CharDev:
			n.Rdev = r.uvarint("rdev")
		case Fifo, Socket:
		default:
			r.failf("entry %q: unknown type %d", n.Name, n.Type)
		}
		if flags&flagXattrs != 0 {
			nx := r.uvarint("xattr count")
			if nx == 0 || nx > uint64(len(r.b)) {
				r.failf("entry %q: xattr count %d", n.Name, nx)
			}
			for j := uint64(0); j < nx && r.err == nil; j++ {
				x := Xattr{Name: r.str("xattr name")}
				x.Value = bytes.Clone(r.bytes("xattr value", r.uvarint("xattr value length")))
				if j > 0 && x.Name <= n.Xattrs[j-1].Name {
					r.failf("entry %q: xattrs not sorted", n.Name)
				}
				n.Xattrs = append(n.Xattrs, x)
			}
		}
		n.MultiLink = flags&flagMultiLink != 0
		if flags&flagHardLink != 0 {
			n.HardLink = r.str("hard link")
			if n.HardLink == "" {
				r.failf("entry %q: empty hard link path", n.Name)
			}
		}
		if r.err != nil {
			break
		}
		if err := ValidName(n.Name); err != nil {
			return nil, err
		}
		if len(t.Nodes) > 0 && n.Name <= t.Nodes[len(t.Nodes)-1].Name {
			return nil, fmt.Errorf("entries %q and %q not sorted or duplicated: %w", t.Nodes[len(t.Nodes)-1].Name, n.Name, ErrInvalidTree)
		}
		t.Nodes = append(t.Nodes, n)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes: %w", len(r.b), ErrInvalidTree)
	}
	return t, nil
}
