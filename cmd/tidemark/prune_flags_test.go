package main

import (
	"strings"
	"testing"
	"time"
)

// TestPruneFlags: --max-unused and --max-repack-size accept what prune can
// use and refuse the rest, naming the option and why.
func TestPruneFlags(t *testing.T) {
	for _, tc := range []struct {
		maxUnused, maxRepack string
		want                 float64 // MaxUnused when accepted
		err                  string  // "" when accepted
	}{
		{"5%", "", 0.05, ""},
		{"0%", "", 0, ""},
		{"100%", "", 1, ""},
		{" 2.5% ", "2GiB", 0.025, ""},
		{"150%", "", 0, `--max-unused "150%": want a percentage from 0% to 100%`},
		{"100.5%", "", 0, `--max-unused "100.5%": want a percentage from 0% to 100%`},
		{"-1%", "", 0, `--max-unused "-1%": want a percentage from 0% to 100%`},
		{"5", "", 0, `--max-unused "5": want a percentage such as 5%`},
		{"NaN%", "", 0, `--max-unused "NaN%": want a percentage such as 5%`},
		{"Inf%", "", 0, `--max-unused "Inf%": want a percentage such as 5%`},
		{"5%", "0", 0, `--max-repack-size "0"`},
		{"5%", "lots", 0, `--max-repack-size "lots"`},
	} {
		pf := pruneFlags{maxUnused: tc.maxUnused, maxRepackSize: tc.maxRepack, maxWait: time.Hour}
		opt, err := pf.options()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("--max-unused %q --max-repack-size %q: %v", tc.maxUnused, tc.maxRepack, err)
		case tc.err == "" && opt.MaxUnused != tc.want:
			t.Errorf("--max-unused %q: MaxUnused %v, want %v", tc.maxUnused, opt.MaxUnused, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("--max-unused %q --max-repack-size %q: error %v, want %q", tc.maxUnused, tc.maxRepack, err, tc.err)
		}
	}
}
