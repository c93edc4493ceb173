// Package limit caps a backend's upload and download rates
// (--limit-upload, --limit-download), so a backup running every few
// minutes does not saturate the user's uplink.
package limit

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/tidemark/tidemark/internal/backend"
)

// burst is the largest step a transfer waits for at once: small enough
// that the rate is smooth, large enough that waiting costs little.
const burst = 64 << 10

// Backend limits the bytes per second of another backend's saves and loads.
type Backend struct {
	backend.Backend
	up, down *rate.Limiter
}

// New wraps be; a rate of 0 KiB/s leaves that direction unlimited.
func New(be backend.Backend, uploadKiB, downloadKiB int) backend.Backend {
	if uploadKiB <= 0 && downloadKiB <= 0 {
		return be
	}
	return &Backend{Backend: be, up: limiter(uploadKiB), down: limiter(downloadKiB)}
}

func limiter(kib int) *rate.Limiter {
	if kib <= 0 {
		return nil
	}
	bps := kib * 1024
	return rate.NewLimiter(rate.Limit(bps), min(burst, bps))
}

// wait takes n bytes' worth of tokens in steps no larger than the burst.
func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		step := min(n, l.Burst())
		if err := l.WaitN(ctx, step); err != nil {
			return fmt.Errorf("rate limit: %w", err)
		}
		n -= step
	}
	return nil
}

// Save implements backend.Backend: the upload waits for its share of the
// rate before it is sent.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := wait(ctx, b.up, len(data)); err != nil {
		return err
	}
	return b.Backend.Save(ctx, h, data)
}

// Load implements backend.Backend: what was downloaded is paid for before
// the next transfer may start.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	data, err := b.Backend.Load(ctx, h, offset, length)
	if werr := wait(ctx, b.down, len(data)); werr != nil && err == nil {
		err = werr
	}
	return data, err
}
