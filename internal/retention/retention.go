// Package retention decides which snapshots a forget keeps, and why:
// restic-style rules (--keep-last, --keep-within, --keep-hourly/daily/
// weekly/monthly/yearly, --keep-tag) and Duplicati-style tiers
// ("1D:0s,7D:1h,1M:1D,U:1M": within a day keep all, within a week one per
// hour, ...). Calendar buckets are taken in a given time zone, so "daily"
// means the user's days, DST changes included.
package retention

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Item is a snapshot as a policy sees it.
type Item struct {
	ID    string
	Time  time.Time
	Group string // snapshots are judged within their group (host, paths)
	Tags  []string
}

// Policy says what to keep; a snapshot is kept when any rule keeps it.
type Policy struct {
	Last                                   int
	Within                                 time.Duration
	Hourly, Daily, Weekly, Monthly, Yearly int
	Tags                                   []string
	Tiers                                  []Tier
	// Location is the time zone of calendar buckets (default time.Local).
	Location *time.Location
}

// Empty reports whether the policy has no rule (forgetting everything is
// never what a user means).
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Within == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 &&
		p.Monthly == 0 && p.Yearly == 0 && len(p.Tags) == 0 && len(p.Tiers) == 0
}

// Decision is the fate of one snapshot.
type Decision struct {
	Item    Item
	Keep    bool
	Reasons []string // why it is kept; empty when it is forgotten
}

// Apply judges every item at time now. Decisions come newest first within
// each group, groups in order of first appearance.
func Apply(items []Item, p Policy, now time.Time) []Decision {
	loc := p.Location
	if loc == nil {
		loc = time.Local
	}
	var order []string
	groups := map[string][]Item{}
	for _, it := range items {
		if _, ok := groups[it.Group]; !ok {
			order = append(order, it.Group)
		}
		groups[it.Group] = append(groups[it.Group], it)
	}
	var out []Decision
	for _, g := range order {
		out = append(out, applyGroup(groups[g], p, now, loc)...)
	}
	return out
}

func applyGroup(items []Item, p Policy, now time.Time, loc *time.Location) []Decision {
	slices.SortStableFunc(items, func(a, b Item) int { return b.Time.Compare(a.Time) })
	ds := make([]Decision, len(items))
	for i, it := range items {
		ds[i].Item = it
	}
	keep := func(i int, reason string) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, reason)
	}
	for i := range ds {
		if i < p.Last {
			keep(i, fmt.Sprintf("last %d", p.Last))
		}
		if p.Within > 0 && now.Sub(ds[i].Item.Time) <= p.Within {
			keep(i, "within "+formatDuration(p.Within))
		}
		for _, t := range p.Tags {
			if slices.Contains(ds[i].Item.Tags, t) {
				keep(i, "tag "+t)
			}
		}
	}
	buckets := []struct {
		n    int
		name string
		key  func(time.Time) string
	}{
		{p.Hourly, "hourly", func(t time.Time) string { return t.Format("2006-01-02 15h") }},
		{p.Daily, "daily", func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, "weekly", func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{p.Monthly, "monthly", func(t time.Time) string { return t.Format("2006-01") }},
		{p.Yearly, "yearly", func(t time.Time) string { return t.Format("2006") }},
	}
	for _, b := range buckets {
		if b.n <= 0 {
			continue
		}
		// The newest snapshot of each of the n newest buckets.
		last, count := "", 0
		for i := range ds {
			k := b.key(ds[i].Item.Time.In(loc))
			if k == last {
				continue
			}
			last = k
			if count++; count > b.n {
				break
			}
			keep(i, b.name+" "+k)
		}
	}
	applyTiers(ds, p.Tiers, now, loc, keep)
	return ds
}

// Tier is one Duplicati-style timeframe: snapshots younger than Frame (and
// older than the previous, shorter frame) are kept one per Interval.
type Tier struct {
	Frame     Span // ignored when Unlimited
	Unlimited bool
	Interval  Span
}

// Span is a length of time in calendar units: n seconds, minutes, hours,
// days, weeks, months or years.
type Span struct {
	N    int
	Unit byte // s m h D W M Y
}

// add returns t moved by sign×s, months and years by the calendar.
func (s Span) add(t time.Time, sign int) time.Time {
	n := sign * s.N
	switch s.Unit {
	case 's':
		return t.Add(time.Duration(n) * time.Second)
	case 'm':
		return t.Add(time.Duration(n) * time.Minute)
	case 'h':
		return t.Add(time.Duration(n) * time.Hour)
	case 'D':
		return t.AddDate(0, 0, n)
	case 'W':
		return t.AddDate(0, 0, 7*n)
	case 'M':
		return t.AddDate(0, n, 0)
	}
	return t.AddDate(n, 0, 0)
}

func (s Span) String() string { return strconv.Itoa(s.N) + string(s.Unit) }

// applyTiers keeps, in each tier's band of ages, the oldest snapshot and
// then each one at least Interval after the last kept; snapshots older
// than every frame are left to the other rules. The newest snapshot is
// always kept when tiers are given.
func applyTiers(ds []Decision, tiers []Tier, now time.Time, loc *time.Location, keep func(int, string)) {
	if len(tiers) == 0 || len(ds) == 0 {
		return
	}
	keep(0, "newest")
	prev := now
	for _, tr := range tiers {
		var limit time.Time // zero: unlimited
		if !tr.Unlimited {
			limit = tr.Frame.add(now.In(loc), -1)
		}
		var lastKept time.Time
		name := "U:" + tr.Interval.String()
		if !tr.Unlimited {
			name = tr.Frame.String() + ":" + tr.Interval.String()
		}
		// Oldest first within the band (limit, prev].
		for i := len(ds) - 1; i >= 0; i-- {
			t := ds[i].Item.Time
			if t.After(prev) || (!limit.IsZero() && !t.After(limit)) {
				continue
			}
			if lastKept.IsZero() || !t.Before(tr.Interval.add(lastKept.In(loc), 1)) {
				keep(i, "retention "+name)
				lastKept = t
			}
		}
		if tr.Unlimited {
			return
		}
		prev = limit
	}
}

// ParseTiers parses a Duplicati-style retention string such as
// "1D:0s,7D:1h,1M:1D,1Y:1W,U:1M" (the value of --retention, which its
// errors name). Frames must be longer than zero and grow from left to
// right; an interval may not be longer than its frame (it would keep no
// more than a shorter one); "U" (unlimited) may only come last.
func ParseTiers(s string) ([]Tier, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("--retention %q: %s", s, fmt.Sprintf(format, args...))
	}
	// Spans in calendar units are compared by where they end from one
	// reference time.
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []Tier
	for _, part := range strings.Split(s, ",") {
		frame, interval, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, bad("%q is not FRAME:INTERVAL", part)
		}
		var tr Tier
		if frame == "U" {
			tr.Unlimited = true
		} else {
			f, err := parseSpan(frame)
			if err != nil {
				return nil, bad("%v", err)
			}
			if f.N == 0 {
				return nil, bad("timeframe %s is empty: a timeframe holds the snapshots younger than it, so it must be longer than zero", f)
			}
			tr.Frame = f
		}
		iv, err := parseSpan(interval)
		if err != nil {
			return nil, bad("%v", err)
		}
		tr.Interval = iv
		if !tr.Unlimited && iv.add(ref, 1).After(tr.Frame.add(ref, 1)) {
			return nil, bad("interval %s is longer than its timeframe %s: %s:%s keeps the same snapshots", iv, tr.Frame, tr.Frame, tr.Frame)
		}
		if len(out) > 0 {
			last := out[len(out)-1]
			if last.Unlimited {
				return nil, bad("U must be the last timeframe")
			}
			if !tr.Unlimited && !tr.Frame.add(ref, 1).After(last.Frame.add(ref, 1)) {
				return nil, bad("timeframe %s is not longer than %s", tr.Frame, last.Frame)
			}
		}
		out = append(out, tr)
	}
	return out, nil
}

func parseSpan(s string) (Span, error) {
	if len(s) < 2 {
		return Span{}, fmt.Errorf("bad span %q (want a number and one of s m h D W M Y)", s)
	}
	unit := s[len(s)-1]
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 0 || !strings.ContainsRune("smhDWMY", rune(unit)) {
		return Span{}, fmt.Errorf("bad span %q (want a number and one of s m h D W M Y)", s)
	}
	return Span{N: n, Unit: unit}, nil
}

func formatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// ParseWithin parses --keep-within values: Go durations plus d (days),
// e.g. "2d", "36h", "1d12h".
func ParseWithin(s string) (time.Duration, error) {
	var total time.Duration
	rest := s
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		days, err := strconv.Atoi(rest[:i])
		if err != nil || days < 0 {
			return 0, fmt.Errorf("--keep-within %q: bad day count", s)
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("--keep-within %q: want e.g. 2d, 36h or 1d12h", s)
		}
		total += d
	}
	if total <= 0 {
		return 0, fmt.Errorf("--keep-within %q: must be positive", s)
	}
	return total, nil
}
