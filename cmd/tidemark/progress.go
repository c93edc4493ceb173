package main

import (
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/tidemark/tidemark/internal/app"
)

// progressBar redraws one status line on a terminal from a backup's
// Progress events.
type progressBar struct {
	w io.Writer
	// width is the terminal's width (0: unknown); the line, with the file
	// being read at its end, is cut to fit, or it would wrap and every
	// redraw would leave a line behind.
	width int
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
	if p.Current != "" && b.width > 0 {
		line = fitLine(line, displayText(p.Current), b.width-1)
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
}

// fitLine appends "  path" to line within width characters, cutting the
// path's start (its end says most) and marking the cut with "...".
func fitLine(line, path string, width int) string {
	room := width - utf8.RuneCountInString(line) - 2
	if room < 8 {
		return line
	}
	if n := utf8.RuneCountInString(path); n > room {
		r := []rune(path)
		path = "..." + string(r[n-room+3:])
	}
	return line + "  " + path
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
