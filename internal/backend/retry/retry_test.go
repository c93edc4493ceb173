package retry

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/backendtest"
	"github.com/tidemark/tidemark/internal/backend/faulty"
	"github.com/tidemark/tidemark/internal/backend/local"
)

// TestConformanceThroughFaults: with retries, a backend that fails 30% of
// calls in every way faulty knows looks like a reliable one.
func TestConformanceThroughFaults(t *testing.T) {
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	f := faulty.New(be.WithoutSync(), faulty.Options{Rate: 0.3, Seed: 1, Slow: time.Millisecond})
	var retries atomic.Int64
	r := New(f, Options{Base: time.Millisecond, Max: 20 * time.Millisecond, Attempts: 30,
		Report: func(string, backend.Handle, error, int, time.Duration) { retries.Add(1) }})
	// A lost answer to a save of an existing name looks like success on
	// the retry, so ErrExists is not promised through faults.
	backendtest.Run(t, r, backendtest.Options{ListObjects: 300})
	if f.Injected.Load() == 0 || retries.Load() == 0 {
		t.Fatalf("no faults exercised: %d injected, %d retries", f.Injected.Load(), retries.Load())
	}
}

// flaky fails its first n calls of every method with err.
type flaky struct {
	backend.Backend
	n     int
	err   error
	calls int
}

func (f *flaky) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if f.calls++; f.calls <= f.n {
		return f.err
	}
	return f.Backend.Save(ctx, h, data)
}

func (f *flaky) Remove(ctx context.Context, h backend.Handle) error {
	if f.calls++; f.calls <= f.n {
		return f.err
	}
	return f.Backend.Remove(ctx, h)
}

func TestPolicy(t *testing.T) {
	ctx := context.Background()
	h := backend.Handle{Type: backend.Snapshot, Name: "s1"}
	denied := errors.New("403 access denied")
	for _, tc := range []struct {
		name      string
		failures  int
		err       error
		wantCalls int
		wantErr   string
	}{
		{"transient then ok", 3, errors.New("connection reset"), 4, ""},
		{"gives up", 100, errors.New("503 slow down"), 5, "gave up after 5 attempts"},
		{"permanent not retried", 100, denied, 1, "access denied"},
		{"not found not retried", 100, fmt.Errorf("x: %w", backend.ErrNotFound), 1, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
			if err != nil {
				t.Fatal(err)
			}
			f := &flaky{Backend: be.WithoutSync(), n: tc.failures, err: tc.err}
			r := New(f, Options{Base: time.Microsecond, Attempts: 5, Permanent: func(err error) bool { return errors.Is(err, denied) }})
			err = r.Save(ctx, h, []byte("x"))
			if f.calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", f.calls, tc.wantCalls)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// lostAnswer performs each operation, then reports a failure once.
type lostAnswer struct {
	backend.Backend
	failed bool
}

func (l *lostAnswer) Save(ctx context.Context, h backend.Handle, data []byte) error {
	err := l.Backend.Save(ctx, h, data)
	if !l.failed {
		l.failed = true
		return errors.New("connection reset after the request was handled")
	}
	return err
}

func (l *lostAnswer) Remove(ctx context.Context, h backend.Handle) error {
	err := l.Backend.Remove(ctx, h)
	if !l.failed {
		l.failed = true
		return errors.New("connection reset after the request was handled")
	}
	return err
}

// TestLostAnswers: a save or remove that took effect but whose answer was
// lost succeeds on the retry instead of failing with ErrExists/ErrNotFound.
func TestLostAnswers(t *testing.T) {
	ctx := context.Background()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Type: backend.Index, Name: "i1"}
	l := &lostAnswer{Backend: be.WithoutSync()}
	r := New(l, Options{Base: time.Microsecond})
	if err := r.Save(ctx, h, []byte("x")); err != nil {
		t.Fatalf("save: %v", err)
	}
	l.failed = false
	if err := r.Remove(ctx, h); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// A first attempt that finds the object existing is a real ErrExists.
	if err := r.Save(ctx, h, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, h, []byte("x")); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("save of an existing object: %v", err)
	}
}

func TestListResumesWithoutRepeats(t *testing.T) {
	ctx := context.Background()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		be.Save(ctx, backend.Handle{Type: backend.Snapshot, Name: fmt.Sprintf("s%02d", i)}, nil)
	}
	f := faulty.New(be, faulty.Options{Rate: 0.5, Seed: 3, Slow: time.Microsecond})
	r := New(f, Options{Base: time.Microsecond, Attempts: 50})
	for range 20 {
		seen := map[string]int{}
		if err := r.List(ctx, backend.Snapshot, func(n string, _ int64) error { seen[n]++; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 50 {
			t.Fatalf("listed %d names, want 50", len(seen))
		}
		for n, c := range seen {
			if c != 1 {
				t.Fatalf("%s listed %d times", n, c)
			}
		}
	}
	// The caller's own error stops the listing and is not retried.
	stop := errors.New("stop")
	calls := 0
	if err := r.List(ctx, backend.Snapshot, func(string, int64) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("caller error: %v after %d calls", err, calls)
	}
}
