package main

import (
	"fmt"
	"io"
	"time"

	"github.com/tidemark/tidemark/internal/app"
)

// progressBar redraws one status line on a terminal from a backup's
// Progress events.
type progressBar struct {
	w io.Writer
	// files and bytes estimate the total (the parent snapshot's; 0 if
	// none), for the ETA.
	files, bytes uint64
}

func (b *progressBar) draw(p app.Progress) {
	el := p.Elapsed
	rate := float64(p.BytesRead) / max(el.Seconds(), 1e-3)
	line := fmt.Sprintf("[%s] %d files, %s, read %s (%s/s)", fmtDuration(el), p.Files, humanBytes(p.Bytes), humanBytes(p.BytesRead), humanBytes(uint64(rate)))
	if b.bytes > 0 && p.Bytes > 0 && p.Bytes < b.bytes {
		frac := float64(p.Bytes) / float64(b.bytes)
		if b.files > 0 {
			frac = (frac + float64(p.Files)/float64(b.files)) / 2
		}
		if frac > 0.01 && frac < 1 {
			eta := time.Duration(float64(el) * (1 - frac) / frac)
			line += fmt.Sprintf(", %3.0f%%, ETA %s", frac*100, fmtDuration(eta))
		}
	}
	if p.Errors > 0 {
		line += fmt.Sprintf(", %d errors", p.Errors)
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
}

// clear removes the status line.
func (b *progressBar) clear() { fmt.Fprint(b.w, "\r\x1b[K") }

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
