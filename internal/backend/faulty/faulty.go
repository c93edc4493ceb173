// Package faulty wraps a backend and injects the failures real networks
// and servers produce, at a configurable rate, for tests: errors before an
// operation, errors after it took effect (the answer was lost), timeouts,
// truncated reads and slow answers.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
)

// ErrInjected marks every injected failure.
var ErrInjected = errors.New("injected fault")

// Options configure the faults.
type Options struct {
	// Rate is the probability that a call fails or is slowed (0..1).
	Rate float64
	// Seed makes the fault sequence reproducible.
	Seed uint64
	// Slow is how long a slowed call waits (default 20 ms); a timeout
	// waits this long and then fails.
	Slow time.Duration
}

// Backend injects faults into the calls of another backend.
type Backend struct {
	backend.Backend
	opt Options

	mu  sync.Mutex
	rng *rand.Rand

	// Injected counts the faults injected so far.
	Injected atomic.Int64
}

// New wraps be.
func New(be backend.Backend, opt Options) *Backend {
	if opt.Slow <= 0 {
		opt.Slow = 20 * time.Millisecond
	}
	return &Backend{Backend: be, opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15))}
}

type fault int

const (
	none fault = iota
	before
	after // the operation took effect, its answer is lost
	timeout
	truncate
	slow
)

// pick draws the fault for one call.
func (b *Backend) pick(op string) fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rng.Float64() >= b.opt.Rate {
		return none
	}
	kinds := []fault{before, after, timeout, slow}
	if op == "load" {
		kinds = append(kinds, truncate)
	}
	return kinds[b.rng.IntN(len(kinds))]
}

func (b *Backend) fail(op string, h backend.Handle, f fault) error {
	b.Injected.Add(1)
	switch f {
	case timeout:
		time.Sleep(b.opt.Slow)
		return fmt.Errorf("%s %s: %w: i/o timeout", op, h, ErrInjected)
	case after:
		return fmt.Errorf("%s %s: %w: connection reset after the request was handled", op, h, ErrInjected)
	}
	return fmt.Errorf("%s %s: %w: connection reset by peer", op, h, ErrInjected)
}

// call runs fn with the fault drawn for it.
func (b *Backend) call(op string, h backend.Handle, fn func() error) error {
	f := b.pick(op)
	switch f {
	case none:
		return fn()
	case slow:
		b.Injected.Add(1)
		time.Sleep(b.opt.Slow)
		return fn()
	case after:
		if err := fn(); err != nil {
			return err
		}
		return b.fail(op, h, f)
	case truncate:
		return fn() // handled by Load
	}
	return b.fail(op, h, f)
}

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	return b.call("save", h, func() error { return b.Backend.Save(ctx, h, data) })
}

// Load implements backend.Backend; a truncated read returns part of the
// data with an error, as a connection cut in the middle of a body does.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	if b.pick("load") == truncate {
		out, err := b.Backend.Load(ctx, h, offset, length)
		if err != nil || len(out) == 0 {
			return out, err
		}
		b.Injected.Add(1)
		return out[:len(out)/2], fmt.Errorf("load %s: %w: %w", h, ErrInjected, io.ErrUnexpectedEOF)
	}
	var out []byte
	err := b.call("load", h, func() error {
		var err error
		out, err = b.Backend.Load(ctx, h, offset, length)
		return err
	})
	return out, err
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (int64, error) {
	var n int64
	err := b.call("stat", h, func() error {
		var err error
		n, err = b.Backend.Stat(ctx, h)
		return err
	})
	return n, err
}

// List implements backend.Backend; a failing listing may stop part way,
// after some names were passed to fn.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(string, int64) error) error {
	h := backend.Handle{Type: t}
	f := b.pick("list")
	if f == none || f == slow {
		if f == slow {
			b.Injected.Add(1)
			time.Sleep(b.opt.Slow)
		}
		return b.Backend.List(ctx, t, fn)
	}
	cut := errors.New("cut")
	n := 0
	err := b.Backend.List(ctx, t, func(name string, size int64) error {
		if n++; n > 3 {
			return cut
		}
		return fn(name, size)
	})
	if err != nil && !errors.Is(err, cut) {
		return err
	}
	if f == after && n <= 3 {
		return nil // the listing was complete before the cut
	}
	return b.fail("list", h, f)
}

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	return b.call("remove", h, func() error { return b.Backend.Remove(ctx, h) })
}
