// Package plan makes the one decision that shapes every backup: scan the
// whole tree, or trust a change source (the watcher's journal, an external
// list) and list only what it reports, and why. Every rule lives here, so
// the reason a backup gives is always the rule that decided it: Decide
// holds the rules that need no I/O, Make asks the source and the local
// state, and Decision.Decline handles a scan that finds it cannot go on.
package plan

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Scan modes a user can ask for.
const (
	ScanAuto    = "auto"
	ScanFull    = "full"
	ScanJournal = "journal"
)

// Policy forces full scans now and then, whatever the journal says: the
// safety net for a journal that is wrong in a way nothing detects.
type Policy struct {
	// Every forces a full scan after this many journal-driven backups
	// (0: never).
	Every int `json:"every,omitempty"`
	// MaxAge forces a full scan when the last one is older (0: never).
	MaxAge time.Duration `json:"max_age,omitempty"`
	// Window is a daily time window ("01:00-05:00", local time) in which
	// backups scan fully; empty for none.
	Window string `json:"window,omitempty"`
}

// Validate checks the policy's values and names the bad option.
func (p Policy) Validate() error {
	if p.Every < 0 {
		return fmt.Errorf("--full-scan-every %d: must not be negative", p.Every)
	}
	if p.MaxAge < 0 {
		return fmt.Errorf("--full-scan-max-age %s: must not be negative", p.MaxAge)
	}
	if p.Window != "" {
		if _, _, err := ParseWindow(p.Window); err != nil {
			return fmt.Errorf("--full-scan-window %q: %w", p.Window, err)
		}
	}
	return nil
}

// ParseWindow parses "HH:MM-HH:MM" into minutes after midnight. A window
// may wrap around midnight ("22:00-02:00").
func ParseWindow(s string) (start, end int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want HH:MM-HH:MM")
	}
	if start, err = parseClock(a); err != nil {
		return 0, 0, err
	}
	if end, err = parseClock(b); err != nil {
		return 0, 0, err
	}
	if start == end {
		return 0, 0, fmt.Errorf("empty window")
	}
	return start, end, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		return 0, fmt.Errorf("invalid time %q (want HH:MM)", s)
	}
	return hh*60 + mm, nil
}

// InWindow reports whether t (in its own location) falls in the window.
func InWindow(window string, t time.Time) bool {
	start, end, err := ParseWindow(window)
	if err != nil {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if start < end {
		return m >= start && m < end
	}
	return m >= start || m < end
}

// Parent is what the decision needs to know of the parent snapshot.
type Parent struct {
	// Cursor is the journal position recorded with it; empty if none.
	Cursor string
	// Settings is its settings hash.
	Settings string
	// JournalSinceFull counts the journal-driven backups since the last
	// full scan in its chain; LastFull is that full scan's time.
	JournalSinceFull int
	LastFull         time.Time
	// Time is when the parent snapshot was taken.
	Time time.Time
}

// Input is everything the decision depends on.
type Input struct {
	Scan         string
	Parent       *Parent // nil: no parent snapshot
	Settings     string  // this backup's settings hash
	HasStatCache bool
	Policy       Policy
	Now          time.Time
	// Vouched: the changes come from a list its author vouches for since
	// the parent snapshot (--changed-from), so no cursor is needed.
	Vouched bool
	// IndexShrunk is when this cache last found index files removed (a
	// prune or a repair): a parent older than that may reference blobs
	// that are gone, so its subtrees must not be reused unchecked.
	IndexShrunk time.Time
	// IndexDamaged: index files were skipped as damaged, so blobs the
	// parent uses may be missing from the index.
	IndexDamaged bool
}

// IndexShrunkSinceParent reports whether index entries were removed after
// the parent snapshot was taken.
func (in Input) IndexShrunkSinceParent() bool {
	return in.Parent != nil && !in.IndexShrunk.IsZero() && !in.IndexShrunk.Before(in.Parent.Time)
}

// Verdict says whether to try the change source, and if not, why.
type Verdict struct {
	// TryJournal: ask the change journal for the delta since the parent's
	// cursor; a gap still forces a full scan.
	TryJournal bool
	// Reason explains a full scan (empty when TryJournal).
	Reason string
}

// Decide applies the rules in order. With Scan "journal" a reason to scan
// fully is returned as an error instead, so the user gets a clear failure
// rather than a silent full scan.
func Decide(in Input) (Verdict, error) {
	full := func(reason string) (Verdict, error) { return FullScan(in.Scan, reason) }
	switch in.Scan {
	case "", ScanAuto, ScanJournal:
	case ScanFull:
		return Verdict{Reason: "forced by --scan full"}, nil
	default:
		return Verdict{}, fmt.Errorf("--scan %q: want auto, full or journal", in.Scan)
	}
	switch {
	case in.Parent == nil:
		return full("no parent snapshot")
	case in.Parent.Cursor == "" && !in.Vouched:
		return full("no cursor: the parent snapshot was not taken with the change journal")
	case in.Parent.Settings != in.Settings:
		return full("settings changed (roots, excludes or options) since the parent snapshot")
	case in.IndexShrunkSinceParent():
		return full(fmt.Sprintf("index entries were removed since the parent snapshot (a prune or a repair, %s): its subtrees are not reused unchecked, and every reused file is checked against the index",
			in.IndexShrunk.Local().Format("2006-01-02 15:04:05")))
	case in.IndexDamaged:
		return full("damaged index files were skipped (run `tidemark repair index`): the parent's subtrees are not reused unchecked, and every reused file is checked against the index")
	case !in.HasStatCache:
		return full("no local stat cache for these paths")
	}
	p := in.Policy
	if p.Every > 0 && in.Parent.JournalSinceFull >= p.Every {
		return full(fmt.Sprintf("forced by policy: %d journal backups since the last full scan (--full-scan-every %d)", in.Parent.JournalSinceFull, p.Every))
	}
	if p.MaxAge > 0 && !in.Parent.LastFull.IsZero() && in.Now.Sub(in.Parent.LastFull) >= p.MaxAge {
		return full(fmt.Sprintf("forced by policy: last full scan %s ago (--full-scan-max-age %s)", in.Now.Sub(in.Parent.LastFull).Round(time.Second), p.MaxAge))
	}
	if p.Window != "" && InWindow(p.Window, in.Now) {
		return full(fmt.Sprintf("forced by policy: inside the full-scan window %s", p.Window))
	}
	return Verdict{TryJournal: true}, nil
}

// FullScan is the decision to scan fully for reason, or, when the user
// demanded the journal (--scan journal), the error saying why it cannot be
// used. Make and Decline call it too, for reasons found after Decide (a gap
// in the journal, a scan that declines).
func FullScan(scan, reason string) (Verdict, error) {
	if scan == ScanJournal {
		return Verdict{}, fmt.Errorf("--scan journal: cannot use the change journal: %s", reason)
	}
	return Verdict{Reason: reason}, nil
}
