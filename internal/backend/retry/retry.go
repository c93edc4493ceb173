// Package retry wraps a backend so that transient failures (timeouts,
// connection resets, 5xx answers, truncated reads) are retried with
// exponential backoff and full jitter, and permanent ones (not found,
// access denied, no such bucket) fail at once with the backend's error.
//
// Retrying is safe because every object is write-once and named by its
// content (or randomly): saving again writes the same bytes, and a save or
// remove whose first attempt succeeded but whose answer was lost is
// recognised on the next attempt (ErrExists, ErrNotFound) as done.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
)

// Options tune the retry policy; the zero value is the default policy.
type Options struct {
	// Permanent reports errors that retrying cannot fix, beyond the ones
	// every backend shares (not found, exists, cancelled).
	Permanent func(error) bool
	// Attempts is the maximum number of tries per call (default 8).
	Attempts int
	// Base is the first backoff (default 250 ms); each retry doubles it
	// up to Max (default 30 s), and the actual wait is uniform in [0, it].
	Base, Max time.Duration
	// Report is told about each retry (nil: silent).
	Report func(op string, h backend.Handle, err error, attempt int, wait time.Duration)
}

// Backend is a backend with retries.
type Backend struct {
	backend.Backend
	opt Options
}

// New wraps be.
func New(be backend.Backend, opt Options) *Backend {
	if opt.Attempts <= 0 {
		opt.Attempts = 8
	}
	if opt.Base <= 0 {
		opt.Base = 250 * time.Millisecond
	}
	if opt.Max <= 0 {
		opt.Max = 30 * time.Second
	}
	return &Backend{Backend: be, opt: opt}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() backend.Backend { return b.Backend }

func (b *Backend) permanent(err error) bool {
	switch {
	case errors.Is(err, backend.ErrNotFound), errors.Is(err, backend.ErrExists), errors.Is(err, backend.ErrInvalidName), errors.Is(err, backend.ErrShortObject),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true
	case b.opt.Permanent != nil:
		return b.opt.Permanent(err)
	}
	return false
}

// do runs fn until it succeeds, fails permanently, or runs out of
// attempts; done, when set, turns a permanent error on a retry into
// success (the earlier attempt took effect).
func (b *Backend) do(ctx context.Context, op string, h backend.Handle, done func(error) bool, fn func() error) error {
	wait := b.opt.Base
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		var f final
		if errors.As(err, &f) {
			return f.err
		}
		if attempt > 1 && done != nil && done(err) {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if b.permanent(err) {
			return err
		}
		if attempt >= b.opt.Attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		d := rand.N(wait + 1)
		if b.opt.Report != nil {
			b.opt.Report(op, h, err, attempt, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, b.opt.Max)
	}
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	exists := func(err error) bool { return errors.Is(err, backend.ErrExists) }
	return b.do(ctx, "save", h, exists, func() error { return b.Backend.Save(ctx, h, data) })
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	var out []byte
	err := b.do(ctx, "load", h, nil, func() error {
		var err error
		out, err = b.Backend.Load(ctx, h, offset, length)
		if err == nil && length > 0 && int64(len(out)) != length {
			err = fmt.Errorf("load %s: got %d of %d bytes", h, len(out), length)
		}
		return err
	})
	return out, err
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (int64, error) {
	var n int64
	err := b.do(ctx, "stat", h, nil, func() error {
		var err error
		n, err = b.Backend.Stat(ctx, h)
		return err
	})
	return n, err
}

// List implements backend.Backend. A listing that fails part way is
// started again; names already passed to fn are not passed again.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(string, int64) error) error {
	seen := map[string]bool{}
	return b.do(ctx, "list", backend.Handle{Type: t}, nil, func() error {
		var fnErr error
		err := b.Backend.List(ctx, t, func(name string, size int64) error {
			if seen[name] {
				return nil
			}
			seen[name] = true
			fnErr = fn(name, size)
			return fnErr
		})
		if fnErr != nil {
			return final{fnErr} // the caller's own error is never retried
		}
		return err
	})
}

// final carries an error that ends the retries unchanged.
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	gone := func(err error) bool { return errors.Is(err, backend.ErrNotFound) }
	return b.do(ctx, "remove", h, gone, func() error { return b.Backend.Remove(ctx, h) })
}
