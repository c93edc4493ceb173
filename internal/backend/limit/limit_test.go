package limit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
)

// TestRates moves 384 KiB each way at 512 KiB/s up and 256 KiB/s down: the
// first burst (64 KiB) is free, so the waits are about 0.625 s and 1.25 s.
// The bounds are loose because the test checks that a limit applies, not
// how precisely a busy machine keeps it.
func TestRates(t *testing.T) {
	ctx := context.Background()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	b := New(be.WithoutSync(), 512, 256)
	data := make([]byte, 384<<10)
	h := backend.Handle{Type: backend.Data, Name: "aa01"}
	start := time.Now()
	if err := b.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	start = time.Now()
	if got, err := b.Load(ctx, h, 0, 0); err != nil || len(got) != len(data) {
		t.Fatalf("load: %d bytes, %v", len(got), err)
	}
	down := time.Since(start)
	if up < 500*time.Millisecond || up > 5*time.Second {
		t.Errorf("upload of 384 KiB at 512 KiB/s took %v", up)
	}
	if down < time.Second || down > 10*time.Second {
		t.Errorf("download of 384 KiB at 256 KiB/s took %v", down)
	}
	if New(be, 0, 0) != backend.Backend(be) {
		t.Error("no limits should return the backend itself")
	}
	// A cancelled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Save(cctx, backend.Handle{Type: backend.Data, Name: "aa02"}, data); err == nil {
		t.Error("save with a cancelled context waited and succeeded")
	}
}
