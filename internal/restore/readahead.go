package restore

import (
	"context"
	"fmt"
	"sync"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
)

// readAhead loads content blobs through windows of their packs: a restore
// visits files in the order the backup stored them, so the blobs of
// consecutive files sit next to each other in a pack, and one ranged read
// of a few MiB serves many of them. Against an object store that turns one
// request per blob into one per window; locally it saves system calls.
//
// Each blob is still authenticated on its own (repo.DecodeBlob), so a
// damaged byte in a window affects only the blob that holds it; a window
// that cannot be read falls back to loading the blob alone.
type readAhead struct {
	r      *repo.Repository
	window int64
	keep   int

	mu      sync.Mutex
	sizes   map[blob.ID]int64 // pack sizes, from Stat
	windows []*window         // most recently used last
}

type window struct {
	pack  blob.ID
	start int64
	data  []byte
	ready chan struct{} // closed when data (or err) is set
	err   error
}

func newReadAhead(r *repo.Repository) *readAhead {
	return &readAhead{r: r, window: 4 << 20, keep: 8, sizes: map[blob.ID]int64{}}
}

// load returns the plaintext of data blob id.
func (ra *readAhead) load(ctx context.Context, id blob.ID) ([]byte, error) {
	loc, ok := ra.r.Index().Lookup(id)
	if !ok || loc.Type != blob.Data || int64(loc.Length) > ra.window {
		return ra.r.LoadBlob(ctx, blob.Data, id)
	}
	w, err := ra.windowFor(ctx, loc)
	if err != nil {
		return ra.r.LoadBlob(ctx, blob.Data, id)
	}
	off := int64(loc.Offset) - w.start
	plain, err := ra.r.DecodeBlob(w.data[off:off+int64(loc.Length)], id, blob.Data, int(loc.RawLen))
	if err != nil {
		// Perhaps only the window is bad (a cached copy, a bad read):
		// the blob alone gets the repository's own fallbacks.
		return ra.r.LoadBlob(ctx, blob.Data, id)
	}
	return plain, nil
}

// windowFor returns a window holding loc's bytes, reading one if none
// does; concurrent callers wait for the same read.
func (ra *readAhead) windowFor(ctx context.Context, loc repo.Location) (*window, error) {
	start, end := int64(loc.Offset), int64(loc.Offset)+int64(loc.Length)
	ra.mu.Lock()
	for i := len(ra.windows) - 1; i >= 0; i-- {
		w := ra.windows[i]
		if w.pack != loc.Pack || start < w.start {
			continue
		}
		select {
		case <-w.ready:
			if w.err != nil || end > w.start+int64(len(w.data)) {
				continue
			}
		default:
			// Being read: it will cover loc if loc starts within it.
			if end > w.start+ra.window {
				continue
			}
		}
		ra.windows = append(append(ra.windows[:i:i], ra.windows[i+1:]...), w)
		ra.mu.Unlock()
		<-w.ready
		if w.err != nil || end > w.start+int64(len(w.data)) {
			return nil, fmt.Errorf("window of pack %s: %w", loc.Pack.Short(), w.err)
		}
		return w, nil
	}
	w := &window{pack: loc.Pack, start: start, ready: make(chan struct{})}
	ra.windows = append(ra.windows, w)
	if len(ra.windows) > ra.keep {
		ra.windows = ra.windows[len(ra.windows)-ra.keep:]
	}
	size, known := ra.sizes[loc.Pack]
	ra.mu.Unlock()

	h := backend.Handle{Type: backend.Data, Name: loc.Pack.String()}
	defer close(w.ready)
	if !known {
		var err error
		if size, err = ra.r.Backend().Stat(ctx, h); err != nil {
			w.err = err
			return nil, err
		}
		ra.mu.Lock()
		ra.sizes[loc.Pack] = size
		ra.mu.Unlock()
	}
	n := min(ra.window, size-start)
	if n < end-start {
		w.err = fmt.Errorf("blob at %d+%d beyond pack size %d", start, end-start, size)
		return nil, w.err
	}
	w.data, w.err = ra.r.Backend().Load(ctx, h, start, n)
	if w.err != nil {
		return nil, w.err
	}
	return w, nil
}
