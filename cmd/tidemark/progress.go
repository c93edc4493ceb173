package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tidemark/tidemark/internal/archive"
)

// progressBar redraws one status line on a terminal.
type progressBar struct {
	w     io.Writer
	p     *archive.Progress
	files uint64
	bytes uint64
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

// startProgress draws until stop; estFiles and estBytes (from the parent
// snapshot, 0 if none) give the ETA.
func startProgress(w io.Writer, p *archive.Progress, estFiles, estBytes uint64) *progressBar {
	b := &progressBar{w: w, p: p, files: estFiles, bytes: estBytes, start: time.Now(), done: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.done:
				fmt.Fprint(b.w, "\r\x1b[K")
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

func (b *progressBar) draw() {
	el := time.Since(b.start)
	files, bytes, read := b.p.Files.Load(), b.p.Bytes.Load(), b.p.BytesRead.Load()
	rate := float64(read) / el.Seconds()
	line := fmt.Sprintf("[%s] %d files, %s, read %s (%s/s)", fmtDuration(el), files, humanBytes(bytes), humanBytes(read), humanBytes(uint64(rate)))
	if b.bytes > 0 && bytes > 0 && bytes < b.bytes {
		frac := float64(bytes) / float64(b.bytes)
		if b.files > 0 {
			frac = (frac + float64(files)/float64(b.files)) / 2
		}
		if frac > 0.01 && frac < 1 {
			eta := time.Duration(float64(el) * (1 - frac) / frac)
			line += fmt.Sprintf(", %3.0f%%, ETA %s", frac*100, fmtDuration(eta))
		}
	}
	if e := b.p.Errors.Load(); e > 0 {
		line += fmt.Sprintf(", %d errors", e)
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
}

func (b *progressBar) stop() {
	close(b.done)
	b.wg.Wait()
}

func fmtDuration(d time.Duration) string {
	s := int(d.Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
