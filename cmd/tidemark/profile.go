package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"
)

// peakHeap keeps the heap profile taken when the live heap was largest,
// for --mem-profile: the peak, not the end of a run, is what memory limits
// meet. Without a path it only tracks the peak, which costs no profiles
// (TIDEMARK_PEAK_HEAP=1, which the benchmark sets).
type peakHeap struct {
	path string
	stop chan struct{}
	wg   sync.WaitGroup

	peak    uint64
	profile bytes.Buffer
}

func startPeakHeap(path string) *peakHeap {
	p := &peakHeap{path: path, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			// A new profile only when the heap grew by a tenth: profiles
			// cost a stop of the world each.
			live := sample[0].Value.Uint64()
			if p.path == "" {
				p.peak = max(p.peak, live)
			} else if live > p.peak+p.peak/10 {
				p.peak = live
				p.profile.Reset()
				_ = pprof.Lookup("heap").WriteTo(&p.profile, 0)
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// finish writes the peak profile and says how large the heap got.
func (p *peakHeap) finish(errOut *os.File) {
	close(p.stop)
	p.wg.Wait()
	if p.path == "" {
		fmt.Fprintf(errOut, "peak live heap %d MiB\n", p.peak>>20)
		return
	}
	if err := os.WriteFile(p.path, p.profile.Bytes(), 0o644); err != nil {
		fmt.Fprintf(errOut, "--mem-profile: %v\n", err)
		return
	}
	fmt.Fprintf(errOut, "peak live heap %d MiB; its profile is in %s (go tool pprof -sample_index=inuse_space)\n", p.peak>>20, p.path)
}
