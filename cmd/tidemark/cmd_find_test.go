package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseTimeBound(t *testing.T) {
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.Local)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"", time.Time{}, ""},
		{"36h", now.Add(-36 * time.Hour), ""},
		{"2d", now.AddDate(0, 0, -2), ""},
		{"1w", now.AddDate(0, 0, -7), ""},
		{"1w2d", now.AddDate(0, 0, -9), ""},
		{"1d12h30m", now.Add(-36*time.Hour - 30*time.Minute), ""},
		{" 90m ", now.Add(-90 * time.Minute), ""},
		{"2024-01-31", time.Date(2024, 1, 31, 0, 0, 0, 0, time.Local), ""},
		{"2024-01-31 15:04", time.Date(2024, 1, 31, 15, 4, 0, 0, time.Local), ""},
		{"2024-01-31 15:04:05", time.Date(2024, 1, 31, 15, 4, 5, 0, time.Local), ""},
		{"2024-01-31T15:04:05", time.Date(2024, 1, 31, 15, 4, 5, 0, time.Local), ""},
		{"2024-01-31T15:04:05+02:00", time.Date(2024, 1, 31, 13, 4, 5, 0, time.UTC), ""},
		{"yesterday", time.Time{}, `--newer "yesterday": want a date`},
		{"0d", time.Time{}, "want a date"},
		{"-2d", time.Time{}, "want a date"},
		{"2", time.Time{}, "want a date"},
		{"d", time.Time{}, "want a date"},
		{"99999999999999w", time.Time{}, "want a date"},
		{"2024-13-01", time.Time{}, "want a date"},
	} {
		got, err := parseTimeBound("--newer", tc.in, now)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, %v; want an error %q", tc.in, got, err, tc.err)
			}
		case err != nil || !got.Equal(tc.want):
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
