package plan

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 29, 3, 30, 0, 0, time.UTC)
	good := &Parent{Cursor: "c", Settings: "s", JournalSinceFull: 3, LastFull: now.Add(-time.Hour)}
	with := func(f func(p *Parent)) *Parent { p := *good; f(&p); return &p }
	tests := []struct {
		name    string
		in      Input
		journal bool
		reason  string // substring of the reason, or of the error
		err     bool
	}{
		{"journal ok", Input{Parent: good, Settings: "s", HasStatCache: true, Now: now}, true, "", false},
		{"explicit journal ok", Input{Scan: ScanJournal, Parent: good, Settings: "s", HasStatCache: true, Now: now}, true, "", false},
		{"forced full", Input{Scan: ScanFull, Parent: good, Settings: "s", HasStatCache: true, Now: now}, false, "--scan full", false},
		{"bad scan value", Input{Scan: "sometimes", Now: now}, false, "want auto", true},
		{"no parent", Input{Settings: "s", Now: now}, false, "no parent", false},
		{"no parent, journal demanded", Input{Scan: ScanJournal, Settings: "s", Now: now}, false, "no parent", true},
		{"no cursor", Input{Parent: with(func(p *Parent) { p.Cursor = "" }), Settings: "s", HasStatCache: true, Now: now}, false, "no cursor", false},
		{"settings changed", Input{Parent: good, Settings: "other", HasStatCache: true, Now: now}, false, "settings changed", false},
		{"no stat cache", Input{Parent: good, Settings: "s", Now: now}, false, "stat cache", false},
		{"every N reached", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{Every: 3}, Now: now}, false, "--full-scan-every 3", false},
		{"every N not reached", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{Every: 4}, Now: now}, true, "", false},
		{"max age reached", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{MaxAge: time.Hour}, Now: now}, false, "--full-scan-max-age", false},
		{"max age not reached", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{MaxAge: 2 * time.Hour}, Now: now}, true, "", false},
		{"in window", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{Window: "03:00-04:00"}, Now: now}, false, "window 03:00-04:00", false},
		{"in wrapping window", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{Window: "22:00-03:31"}, Now: now}, false, "window", false},
		{"outside window", Input{Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{Window: "04:00-05:00"}, Now: now}, true, "", false},
		{"index shrunk since the parent", Input{Parent: with(func(p *Parent) { p.Time = now.Add(-time.Hour) }), Settings: "s", HasStatCache: true, IndexShrunk: now.Add(-time.Minute), Now: now}, false, "index entries were removed", false},
		{"index shrunk before the parent", Input{Parent: with(func(p *Parent) { p.Time = now.Add(-time.Minute) }), Settings: "s", HasStatCache: true, IndexShrunk: now.Add(-time.Hour), Now: now}, true, "", false},
		{"index shrunk, list vouched", Input{Parent: with(func(p *Parent) { p.Time = now.Add(-time.Hour); p.Cursor = "" }), Vouched: true, Settings: "s", HasStatCache: true, IndexShrunk: now, Now: now}, false, "index entries were removed", false},
		{"policy with journal demanded", Input{Scan: ScanJournal, Parent: good, Settings: "s", HasStatCache: true, Policy: Policy{Every: 1}, Now: now}, false, "policy", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.reason) {
					t.Fatalf("error %q lacks %q", err, tt.reason)
				}
				return
			}
			if d.TryJournal != tt.journal || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("got %+v, want journal=%v reason~%q", d, tt.journal, tt.reason)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	for _, bad := range []string{"", "3-4", "25:00-01:00", "01:00-01:00", "01:0-02:00", "a:b-c:d"} {
		if _, _, err := ParseWindow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	loc := time.FixedZone("X", 3600)
	at := func(h, m int) time.Time { return time.Date(2026, 1, 1, h, m, 0, 0, loc) }
	cases := []struct {
		w    string
		t    time.Time
		want bool
	}{
		{"01:00-05:00", at(1, 0), true}, {"01:00-05:00", at(4, 59), true}, {"01:00-05:00", at(5, 0), false},
		{"23:30-00:30", at(23, 45), true}, {"23:30-00:30", at(0, 10), true}, {"23:30-00:30", at(12, 0), false},
	}
	for _, c := range cases {
		if got := InWindow(c.w, c.t); got != c.want {
			t.Errorf("InWindow(%s, %s) = %v", c.w, c.t.Format("15:04"), got)
		}
	}
	if err := (Policy{Every: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "--full-scan-every") {
		t.Errorf("negative every: %v", err)
	}
	if err := (Policy{Window: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), "--full-scan-window") {
		t.Errorf("bad window: %v", err)
	}
}
