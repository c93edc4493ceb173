package verify

import (
	"strings"
	"testing"
	"time"
)

const day, week = 24 * time.Hour, 7 * 24 * time.Hour

func TestParseBudget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Budget
		err  string // substring of the error; "" for none
	}{
		{"200MiB/day", Budget{200 << 20, day}, ""},
		{"200MiB/d", Budget{200 << 20, day}, ""},
		{" 200 mib / Day ", Budget{200 << 20, day}, ""},
		{"1.5GiB/week", Budget{3 << 29, week}, ""},
		{"2GiB/w", Budget{2 << 30, week}, ""},
		{"50MB/h", Budget{50e6, time.Hour}, ""},
		{"10KB/hour", Budget{10e3, time.Hour}, ""},
		{"1TiB/week", Budget{1 << 40, week}, ""},
		{"3TB/day", Budget{3e12, day}, ""},
		{"4KiB/day", Budget{4096, day}, ""},
		{"1000/day", Budget{1000, day}, ""},
		{"1000B/day", Budget{1000, day}, ""},
		{"0", Budget{}, ""},
		{"off", Budget{}, ""},
		{"OFF", Budget{}, ""},
		{"0MiB/day", Budget{}, ""},
		{"", Budget{}, `invalid verify budget "": no period`},
		{"200MiB", Budget{}, `invalid verify budget "200MiB": no period (want bytes per period`},
		{"200MiB/month", Budget{}, `unknown period "month" (want day, week or hour)`},
		{"/day", Budget{}, `no amount`},
		{"200XB/day", Budget{}, `amount "200XB" is not a size`},
		{"MiB/day", Budget{}, `amount "MiB" is not a size`},
		{"-5MiB/day", Budget{}, `amount "-5MiB" is not a size`},
		{"1e3MiB/day", Budget{}, `amount "1e3MiB" is not a size`},
		{"1.2.3MiB/day", Budget{}, `not a size`},
		{"inf/day", Budget{}, `not a size`},
		{"9999999TiB/day", Budget{}, `too large`},
	} {
		got, err := ParseBudget(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseBudget(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseBudget(%q) error %v, want one containing %q", tc.in, err, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), "verify budget"):
			t.Errorf("ParseBudget(%q) error %v does not name the option", tc.in, err)
		case err == nil && got != tc.want:
			t.Errorf("ParseBudget(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseRequests(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Budget
		err  string
	}{
		{"100/day", Budget{100, day}, ""},
		{"100/d", Budget{100, day}, ""},
		{"20/h", Budget{20, time.Hour}, ""},
		{"500 / week", Budget{500, week}, ""},
		{"0", Budget{}, ""},
		{"0/day", Budget{}, ""},
		{"off", Budget{}, ""},
		{"100", Budget{}, `invalid verify requests "100": no period`},
		{"1.5/day", Budget{}, `"1.5" is not a whole number of requests`},
		{"-1/day", Budget{}, `not a whole number`},
		{"+1/day", Budget{}, `not a whole number`},
		{"ten/day", Budget{}, `not a whole number`},
		{"100MiB/day", Budget{}, `not a whole number`},
		{"100/fortnight", Budget{}, `unknown period "fortnight"`},
		{"99999999999999999999/day", Budget{}, `not a whole number`},
	} {
		got, err := ParseRequests(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseRequests(%q): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseRequests(%q) error %v, want one containing %q", tc.in, err, tc.err)
		case err == nil && got != tc.want:
			t.Errorf("ParseRequests(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestBudgetPeriodName(t *testing.T) {
	for _, tc := range []struct {
		b    Budget
		want string
	}{
		{Budget{1, 0}, "day"},
		{Budget{1, day}, "day"},
		{Budget{1, week}, "week"},
		{Budget{1, time.Hour}, "hour"},
		{Budget{1, 90 * time.Minute}, "1h30m0s"},
	} {
		if got := tc.b.PeriodName(); got != tc.want {
			t.Errorf("%+v.PeriodName() = %q, want %q", tc.b, got, tc.want)
		}
	}
}
