// Package backendtest is the conformance suite every backend.Backend
// implementation runs against a real store: round trips, ranges, listing
// (past one page), not-found errors, name validation and concurrent use.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
)

// Options describe what a backend guarantees beyond the interface.
type Options struct {
	// DetectsExisting: Save reports ErrExists for an existing object
	// (local and SFTP can; S3 PUT overwrites, which is harmless because
	// names are content hashes or random).
	DetectsExisting bool
	// ListObjects is how many objects the listing test stores; above the
	// backend's page size it exercises pagination (default 1100).
	ListObjects int
}

// Run checks b, which must be an empty repository.
func Run(t *testing.T, b backend.Backend, opt Options) {
	ctx := context.Background()
	h := backend.Handle{Type: backend.Data, Name: "ab" + "cdef0123"}
	t.Run("save load stat", func(t *testing.T) {
		if err := b.Save(ctx, h, []byte("hello world")); err != nil {
			t.Fatal(err)
		}
		if opt.DetectsExisting {
			if err := b.Save(ctx, h, []byte("other")); !errors.Is(err, backend.ErrExists) {
				t.Fatalf("overwrite: %v", err)
			}
		}
		got, err := b.Load(ctx, h, 6, 5)
		if err != nil || string(got) != "world" {
			t.Fatalf("load range: %q %v", got, err)
		}
		got, err = b.Load(ctx, h, 6, 0)
		if err != nil || string(got) != "world" {
			t.Fatalf("load to end: %q %v", got, err)
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
		cfg := backend.Handle{Type: backend.Config}
		if err := b.Save(ctx, cfg, []byte("cfg")); err != nil {
			t.Fatal(err)
		}
		if got, err := backend.LoadAll(ctx, b, cfg); err != nil || string(got) != "cfg" {
			t.Fatalf("config: %q %v", got, err)
		}
		empty := backend.Handle{Type: backend.Lock, Name: "empty"}
		if err := b.Save(ctx, empty, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := backend.LoadAll(ctx, b, empty); err != nil || len(got) != 0 {
			t.Fatalf("empty object: %q %v", got, err)
		}
		if err := b.Remove(ctx, empty); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("not found", func(t *testing.T) {
		missing := backend.Handle{Type: backend.Index, Name: "missing"}
		if _, err := b.Load(ctx, missing, 0, 0); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("load: %v", err)
		}
		if _, err := b.Stat(ctx, missing); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("stat: %v", err)
		}
		if err := b.Remove(ctx, missing); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("remove: %v", err)
		}
	})
	t.Run("list", func(t *testing.T) {
		n := opt.ListObjects
		if n == 0 {
			n = 1100
		}
		want := map[string]int64{}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 16)
		for i := range n {
			name := fmt.Sprintf("%02x%06d", i%256, i)
			size := i % 7
			want[name] = int64(size)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				errs <- b.Save(ctx, backend.Handle{Type: backend.Tree, Name: name}, bytes.Repeat([]byte{'x'}, size))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]int64{}
		if err := b.List(ctx, backend.Tree, func(name string, size int64) error {
			got[name] = size
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d objects, want %d", len(got), len(want))
		}
		for name, size := range want {
			if got[name] != size {
				t.Fatalf("%s: listed size %d, want %d", name, got[name], size)
			}
		}
		// Other namespaces are separate, and an error from fn stops the
		// listing and is returned.
		var data []string
		b.List(ctx, backend.Data, func(name string, _ int64) error { data = append(data, name); return nil })
		sort.Strings(data)
		if len(data) != 1 || data[0] != h.Name {
			t.Fatalf("data listing: %v", data)
		}
		stop := errors.New("stop")
		calls := 0
		if err := b.List(ctx, backend.Tree, func(string, int64) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("listing went on after an error: %v, %d calls", err, calls)
		}
	})
	t.Run("remove", func(t *testing.T) {
		if err := b.Remove(ctx, h); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Load(ctx, h, 0, 0); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("load removed: %v", err)
		}
	})
	t.Run("bad names", func(t *testing.T) {
		for _, bad := range []string{"", "..", "a/b", ".tmp-x", "x\x00y"} {
			if err := b.Save(ctx, backend.Handle{Type: backend.Index, Name: bad}, nil); err == nil {
				t.Errorf("name %q accepted", bad)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Save(cctx, backend.Handle{Type: backend.Snapshot, Name: "c1"}, []byte("x")); err == nil {
			t.Fatal("save with a cancelled context succeeded")
		}
	})
}
