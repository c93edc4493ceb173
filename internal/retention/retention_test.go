package retention

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s: %v", name, err)
	}
	return loc
}

// series makes n snapshots every step, the newest at end.
func series(end time.Time, n int, step time.Duration) []Item {
	var out []Item
	for i := range n {
		ts := end.Add(-time.Duration(i) * step)
		out = append(out, Item{ID: ts.UTC().Format("01-02T15:04"), Time: ts})
	}
	return out
}

func kept(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Item.ID)
		}
	}
	return out
}

func reasonsOf(ds []Decision, id string) string {
	for _, d := range ds {
		if d.Item.ID == id {
			return strings.Join(d.Reasons, ", ")
		}
	}
	return "?"
}

func TestPolicies(t *testing.T) {
	utc := time.UTC
	berlin := mustLoc(t, "Europe/Berlin")
	ny := mustLoc(t, "America/New_York")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, utc)
	for _, tc := range []struct {
		name    string
		items   []Item
		policy  Policy
		now     time.Time
		want    []string          // kept IDs, newest first
		reasons map[string]string // ID -> joined reasons
	}{
		{
			name:   "last 3",
			items:  series(now, 5, time.Hour),
			policy: Policy{Last: 3},
			want:   []string{"11-25T12:00", "11-25T11:00", "11-25T10:00"},
		},
		{
			name:    "within 2d keeps by age, not count",
			items:   series(now, 6, 20*time.Hour),
			policy:  Policy{Within: 48 * time.Hour},
			want:    []string{"11-25T12:00", "11-24T16:00", "11-23T20:00"},
			reasons: map[string]string{"11-23T20:00": "within 2d"},
		},
		{
			name:    "daily keeps the newest of each of the last N days",
			items:   series(now, 12, 6*time.Hour), // 4 per day
			policy:  Policy{Daily: 2, Location: utc},
			want:    []string{"11-25T12:00", "11-24T18:00"},
			reasons: map[string]string{"11-24T18:00": "daily 2026-11-24"},
		},
		{
			name:    "last and daily together, reasons add up",
			items:   series(now, 12, 6*time.Hour),
			policy:  Policy{Last: 1, Daily: 3, Location: utc},
			want:    []string{"11-25T12:00", "11-24T18:00", "11-23T18:00"},
			reasons: map[string]string{"11-25T12:00": "last 1, daily 2026-11-25"},
		},
		{
			name:   "weekly uses ISO weeks, monthly and yearly calendar units",
			items:  series(now, 100, 7*24*time.Hour),
			policy: Policy{Weekly: 2, Monthly: 2, Yearly: 2, Location: utc},
			// weeks 48 and 47; months 2026-11 and 2026-10 (newest in Oct:
			// Oct 28); years 2026 and 2025 (newest in 2025: Dec 31).
			want: []string{"11-25T12:00", "11-18T12:00", "10-28T12:00", "12-31T12:00"},
		},
		{
			name: "tags",
			items: []Item{
				{ID: "a", Time: now},
				{ID: "b", Time: now.Add(-time.Hour), Tags: []string{"release"}},
				{ID: "c", Time: now.Add(-2 * time.Hour)},
			},
			policy: Policy{Last: 1, Tags: []string{"release"}},
			want:   []string{"a", "b"},
		},
		{
			name: "groups are judged separately",
			items: []Item{
				{ID: "h1-new", Time: now, Group: "h1"},
				{ID: "h2-new", Time: now.Add(-time.Minute), Group: "h2"},
				{ID: "h1-old", Time: now.Add(-time.Hour), Group: "h1"},
				{ID: "h2-old", Time: now.Add(-2 * time.Hour), Group: "h2"},
			},
			policy: Policy{Last: 1},
			want:   []string{"h1-new", "h2-new"},
		},
		{
			// 02:00 UTC on the 25th is still the 24th in New York.
			name: "days are the user's days",
			items: []Item{
				{ID: "late", Time: time.Date(2026, 11, 25, 2, 0, 0, 0, utc)},
				{ID: "evening", Time: time.Date(2026, 11, 24, 23, 0, 0, 0, utc)},
			},
			policy: Policy{Daily: 5, Location: ny},
			want:   []string{"late"},
			now:    time.Date(2026, 11, 25, 3, 0, 0, 0, utc),
		},
		{
			name: "the same instants in UTC days",
			items: []Item{
				{ID: "late", Time: time.Date(2026, 11, 25, 2, 0, 0, 0, utc)},
				{ID: "evening", Time: time.Date(2026, 11, 24, 23, 0, 0, 0, utc)},
			},
			policy: Policy{Daily: 5, Location: utc},
			want:   []string{"late", "evening"},
			now:    time.Date(2026, 11, 25, 3, 0, 0, 0, utc),
		},
		{
			// Berlin falls back on 2026-10-25 at 03:00 CEST to 02:00 CET:
			// the local hour 02 happens twice, and counts as one bucket.
			name:   "hourly across the end of DST",
			items:  series(time.Date(2026, 10, 25, 2, 30, 0, 0, berlin), 6, 30*time.Minute), // 02:30 CET back to 00:00 UTC
			policy: Policy{Hourly: 10, Location: berlin},
			// local times: 02:30 CET, 02:00 CET, 02:30 CEST, 02:00 CEST, 01:30, 01:00 CEST
			want: []string{"10-25T01:30", "10-24T23:30"},
			now:  time.Date(2026, 10, 25, 3, 0, 0, 0, utc),
		},
		{
			// Spring forward on 2026-03-29: a 23-hour day is still one day.
			name:   "daily across the start of DST",
			items:  series(time.Date(2026, 3, 30, 12, 0, 0, 0, berlin), 12, 6*time.Hour),
			policy: Policy{Daily: 3, Location: berlin},
			want:   []string{"03-30T10:00", "03-29T16:00", "03-28T22:00"}, // 23:00 CET on the 28th
			now:    time.Date(2026, 3, 30, 12, 0, 0, 0, utc),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.now
			if at.IsZero() {
				at = now
			}
			ds := Apply(tc.items, tc.policy, at)
			if got := kept(ds); !slices.Equal(got, tc.want) {
				var all []string
				for _, d := range ds {
					all = append(all, fmt.Sprintf("%s(%s keep=%v %v)", d.Item.ID, d.Item.Time.In(time.UTC).Format(time.RFC3339), d.Keep, d.Reasons))
				}
				t.Fatalf("kept %v, want %v\n%s", got, tc.want, strings.Join(all, "\n"))
			}
			for id, want := range tc.reasons {
				if got := reasonsOf(ds, id); got != want {
					t.Errorf("%s: reasons %q, want %q", id, got, want)
				}
			}
			for _, d := range ds {
				if !d.Keep && len(d.Reasons) > 0 {
					t.Errorf("%s forgotten with reasons %v", d.Item.ID, d.Reasons)
				}
			}
		})
	}
}

// TestTiers: backups every five minutes for 40 days under
// "1D:0s,7D:1h,1M:1D,U:1W": all of the last day, one per hour for the
// rest of the week, one per day for the rest of the month, one per week
// before that.
func TestTiers(t *testing.T) {
	tiers, err := ParseTiers("1D:0s,7D:1h,1M:1D,U:1W")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	items := series(now, 40*288, 5*time.Minute)
	ds := Apply(items, Policy{Tiers: tiers, Location: time.UTC}, now)
	count := map[string]int{}
	for _, d := range ds {
		if d.Keep {
			count[d.Reasons[len(d.Reasons)-1]]++
		}
	}
	// The last day: 288 snapshots, of which the newest also says "newest".
	// Days 1-7: 144 hours. Day 7 to one month (Oct 25): 24 days. Older: 40
	// days back is Oct 16, so one week's worth: 2 snapshots a week apart.
	want := map[string]int{"retention 1D:0s": 288, "retention 7D:1h": 144, "retention 1M:1D": 24, "retention U:1W": 2}
	for k, v := range want {
		if d := count[k] - v; d < -1 || d > 1 {
			t.Errorf("%s kept %d, want about %d (all: %v)", k, count[k], v, count)
		}
	}
	if !ds[0].Keep || !slices.Contains(ds[0].Reasons, "newest") {
		t.Errorf("newest not kept: %+v", ds[0])
	}
	// Without U, snapshots older than the last frame go.
	tiers, _ = ParseTiers("1D:1h")
	ds = Apply(items, Policy{Tiers: tiers, Location: time.UTC}, now)
	if n := len(kept(ds)); n < 24 || n > 26 {
		t.Errorf("1D:1h kept %d snapshots, want about 24", n)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in  string
		ok  bool
		err string
	}{
		{"1D:0s,7D:1h,1M:1D,1Y:1W,U:1M", true, ""},
		{"U:1D", true, ""},
		{"7D:1h,1D:0s", false, "not longer"},
		{"U:1D,1Y:1W", false, "U must be the last"},
		{"1D", false, "FRAME:INTERVAL"},
		{"1X:1h", false, "bad span"},
		{"D:1h", false, "bad span"},
		{"0D:0s", false, `--retention "0D:0s": timeframe 0D is empty`},
		{"1D:0s,0W:1D", false, "timeframe 0W is empty"},
		{"1D:2D", false, `--retention "1D:2D": interval 2D is longer than its timeframe 1D`},
		{"1D:25h", false, "interval 25h is longer than its timeframe 1D"},
		{"1D:0s,1M:5W", false, "interval 5W is longer than its timeframe 1M"},
		{"1D:1D", true, ""},
		{"1M:31D", true, ""},
		{"U:10Y", true, ""},
		{"U:0s", true, ""},
	} {
		_, err := ParseTiers(tc.in)
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseTiers(%q): %v", tc.in, err)
		}
	}
	for in, want := range map[string]time.Duration{"2d": 48 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour} {
		if got, err := ParseWithin(in); err != nil || got != want {
			t.Errorf("ParseWithin(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0d", "-1h", "xd", "2days"} {
		if _, err := ParseWithin(bad); err == nil {
			t.Errorf("ParseWithin(%q) accepted", bad)
		}
	}
	if !(Policy{}).Empty() || (Policy{Daily: 1}).Empty() {
		t.Error("Empty")
	}
}
