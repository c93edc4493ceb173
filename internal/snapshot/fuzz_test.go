package snapshot

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/tidemark/tidemark/internal/blob"
)

// seedTrees cover every node type and optional field.
func seedTrees() []*Tree {
	id := func(b byte) blob.ID {
		var id blob.ID
		for i := range id {
			id[i] = b ^ byte(i)
		}
		return id
	}
	return []*Tree{
		{},
		{Nodes: []Node{
			{Name: "a.txt", Type: File, Mode: 0o644, UID: 1000, GID: 1000, MTime: 1700000000123456789, Size: 3 << 20,
				Content: []blob.ID{id(1), id(2), id(3)}},
			{Name: "dir", Type: Dir, Mode: 0o755, MTime: -5, Subtree: id(4), Agg: Aggregates{Bytes: 1 << 40, Files: 7, Dirs: 2, Other: 1}},
			{Name: "empty", Type: File, Mode: 0o600},
			{Name: "link", Type: Symlink, Mode: 0o777, Target: "../a.txt"},
		}},
		{Nodes: []Node{
			{Name: "dev", Type: BlockDev, Mode: 0o660, Rdev: 0x0801},
			{Name: "fifo", Type: Fifo, Mode: 0o644},
			{Name: "hard", Type: File, Mode: 0o4755, Size: 5, Content: []blob.ID{id(5)}, MultiLink: true, HardLink: "sub/orig"},
			{Name: "sock", Type: Socket, Mode: 0o755, Xattrs: []Xattr{{Name: "user.a", Value: []byte("1")}, {Name: "user.b"}}},
			{Name: "tty", Type: CharDev, Mode: 0o620, UID: 1<<32 - 1, Rdev: 1<<64 - 1},
			{Name: "ünï", Type: File, MultiLink: true, Xattrs: []Xattr{{Name: "security.selinux", Value: []byte("system_u:object_r\x00")}}},
		}},
	}
}

func FuzzDecodeTree(f *testing.F) {
	for _, tr := range seedTrees() {
		f.Add(tr.Encode())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTree(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidTree) {
				t.Fatalf("error does not wrap ErrInvalidTree: %v", err)
			}
			return
		}
		enc := tr.Encode()
		again, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		if !reflect.DeepEqual(tr, again) {
			t.Fatalf("round trip changed the tree:\n%+v\n%+v", tr, again)
		}
		// Equal trees must get equal IDs.
		if !bytes.Equal(again.Encode(), enc) {
			t.Fatal("encoding is not deterministic")
		}
	})
}
