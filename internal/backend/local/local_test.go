package local

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
)

func TestLocalBackend(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err == nil {
		t.Fatal("Create on a non-empty directory succeeded")
	}
	h := backend.Handle{Type: backend.Data, Name: "abcdef"}
	if err := b.Save(ctx, h, []byte("hello world")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, h, []byte("other")); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	got, err := b.Load(ctx, h, 6, 5)
	if err != nil || string(got) != "world" {
		t.Fatalf("load range: %q %v", got, err)
	}
	all, err := backend.LoadAll(ctx, b, h)
	if err != nil || string(all) != "hello world" {
		t.Fatalf("load all: %q %v", all, err)
	}
	if _, err := b.Load(ctx, h, 6, 50); err == nil {
		t.Fatal("short read not reported")
	}
	if n, err := b.Stat(ctx, h); err != nil || n != 11 {
		t.Fatalf("stat: %d %v", n, err)
	}
	if err := b.Save(ctx, backend.Handle{Type: backend.Snapshot, Name: "s1"}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, typ := range []backend.FileType{backend.Data, backend.Snapshot} {
		if err := b.List(ctx, typ, func(n string, _ int64) error { names = append(names, n); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(names)
	if len(names) != 2 || names[0] != "abcdef" || names[1] != "s1" {
		t.Fatalf("list: %v", names)
	}
	if err := b.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, h, 0, 0); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("load removed: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b", ".tmp-x"} {
		if err := b.Save(ctx, backend.Handle{Type: backend.Index, Name: bad}, nil); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}
