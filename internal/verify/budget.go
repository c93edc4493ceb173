package verify

import (
	"fmt"

	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Budget is an allowance per rolling period: Amount bytes (or requests)
// in any window of length Period. The zero Budget is off: verify then
// downloads nothing.
type Budget struct {
	Amount int64
	// Period is the window; zero means DefaultPeriod.
	Period time.Duration
}

// DefaultPeriod is the window of a Budget that names none.
const DefaultPeriod = 24 * time.Hour

// Off reports whether the budget allows nothing.
func (b Budget) Off() bool { return b.Amount <= 0 }

// Window returns the budget's period, DefaultPeriod if unset.
func (b Budget) Window() time.Duration {
	if b.Period <= 0 {
		return DefaultPeriod
	}
	return b.Period
}

// PeriodName returns the period as a word ("day", "week", "hour") or, for
// other lengths, as a duration.
func (b Budget) PeriodName() string {
	for _, p := range periods {
		if p.d == b.Window() {
			return p.names[0]
		}
	}
	return b.Window().String()
}

var periods = []struct {
	names []string
	d     time.Duration
}{
	{[]string{"day", "d"}, 24 * time.Hour},
	{[]string{"week", "w"}, 7 * 24 * time.Hour},
	{[]string{"hour", "h"}, time.Hour},
}

// ParseBudget parses a --verify-budget value: an amount of bytes per
// period, such as "200MiB/day", "1.5GiB/week" or "50MB/h". Units are B,
// KiB, MiB, GiB, TiB (powers of 1024) and KB, MB, GB, TB (powers of 1000);
// a bare number is bytes. Periods are day (d), week (w) and hour (h). "0"
// and "off" turn verification off.
func ParseBudget(s string) (Budget, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid verify budget %q: %s", s, fmt.Sprintf(format, args...))
	}
	amount, period, off, err := splitBudget(s)
	if err != nil {
		return Budget{}, bad("%v (want bytes per period, such as 200MiB/day, or off)", err)
	}
	if off {
		return Budget{}, nil
	}
	// go-humanize reads both binary (MiB) and decimal (MB) units.
	n, err := humanize.ParseBytes(amount)
	if err != nil {
		return Budget{}, bad("amount %q is not a size (want e.g. 200MiB/day)", amount)
	}
	if n > math.MaxInt64 {
		return Budget{}, bad("amount %q is too large", amount)
	}
	if n == 0 {
		return Budget{}, nil // "0MiB/day" is off, like "0"
	}
	return Budget{Amount: int64(n), Period: period}, nil
}

// ParseRequests parses a --verify-requests value: a whole number of
// downloads per period, such as "100/day" or "20/h". "0" and "off" turn
// verification off.
func ParseRequests(s string) (Budget, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid verify requests %q: %s", s, fmt.Sprintf(format, args...))
	}
	amount, period, off, err := splitBudget(s)
	if err != nil {
		return Budget{}, bad("%v (want requests per period, such as 100/day, or off)", err)
	}
	if off {
		return Budget{}, nil
	}
	n, err := strconv.ParseInt(amount, 10, 64)
	if err != nil || n < 0 || !isDecimal(amount) || strings.Contains(amount, ".") {
		return Budget{}, bad("%q is not a whole number of requests (want e.g. 100/day)", amount)
	}
	if n == 0 {
		return Budget{}, nil // "0/day" is off, like "0"
	}
	return Budget{Amount: n, Period: period}, nil
}

// splitBudget splits "amount/period"; off is set for "0" and "off".
func splitBudget(s string) (amount string, period time.Duration, off bool, err error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return "", 0, true, nil
	}
	amount, per, ok := strings.Cut(s, "/")
	if !ok {
		return "", 0, false, fmt.Errorf("no period")
	}
	amount = strings.TrimSpace(amount)
	per = strings.ToLower(strings.TrimSpace(per))
	if amount == "" {
		return "", 0, false, fmt.Errorf("no amount")
	}
	for _, p := range periods {
		for _, n := range p.names {
			if n == per {
				return amount, p.d, false, nil
			}
		}
	}
	return "", 0, false, fmt.Errorf("unknown period %q (want day, week or hour)", per)
}

// isDecimal reports whether s is digits with at most one decimal point
// between them: no signs, exponents, "inf" or hexadecimal, which
// strconv.ParseFloat would accept.
func isDecimal(s string) bool {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" {
		return false
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return false
		}
	}
	return !strings.HasSuffix(s, ".")
}
