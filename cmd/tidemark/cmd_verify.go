package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/verify"
)

// verifyFlags are the budget flags of verify and backup --verify.
type verifyFlags struct {
	budget, requests string
}

func (v *verifyFlags) register(f *pflag.FlagSet) {
	f.StringVar(&v.budget, "verify-budget", "200MiB/day",
		"bytes verify may download in any period (day, week or hour), e.g. 200MiB/day, 1GiB/week; 0 or off: none")
	f.StringVar(&v.requests, "verify-requests", "100/day",
		"packs verify may download (one request each) in any period, e.g. 100/day; 0 or off: none")
}

func (v *verifyFlags) options() (verify.Options, error) {
	b, err := verify.ParseBudget(v.budget)
	if err != nil {
		return verify.Options{}, fmt.Errorf("--verify-budget: %w", err)
	}
	n, err := verify.ParseRequests(v.requests)
	if err != nil {
		return verify.Options{}, fmt.Errorf("--verify-requests: %w", err)
	}
	return verify.Options{Bytes: b, Requests: n}, nil
}

func (a *cli) verifyCmd() *cobra.Command {
	var vf verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Download and check a few packs, least recently verified first, within a budget",
		Long: `Verify downloads whole packs and checks them against their names, the index
and the blobs' IDs: packs never verified first, then the least recently
verified, as many as the budgets leave room for. The budgets are rolling
windows kept in the local state database: however often verify runs (or
backup --verify), it downloads no more than --verify-budget bytes and
--verify-requests packs in any period, and no pack twice in one period.

Damage makes verify exit 1 naming the packs, and every later run says so
again until the pack is verified intact or leaves the index; run
tidemark check --read-data to see which files it affects.`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			opt, err := vf.options()
			if err != nil {
				return err
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.Verify(ctx, opt, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				a.printVerify(res, opt)
			}
			return verifyFailure(res)
		}),
	}
	vf.register(cmd.Flags())
	return cmd
}

// printVerify prints what verify did and what is left.
func (a *cli) printVerify(res *app.VerifyReport, opt verify.Options) {
	if res.Stopped == verify.StopOff {
		a.printf("verify is off (--verify-budget or --verify-requests is 0): nothing downloaded\n")
		return
	}
	a.printf("%s\n", verifySummary(res, opt))
	a.printf("budget: used %s of %s/%s and %d of %d requests/%s; left %s and %d requests\n",
		humanBytes(uint64(res.WindowBytes)), humanBytes(uint64(opt.Bytes.Amount)), opt.Bytes.PeriodName(),
		res.WindowRequests, opt.Requests.Amount, opt.Requests.PeriodName(), humanBytes(uint64(res.BytesLeft)), res.RequestsLeft)
	if res.WaitUntil.IsZero() {
		a.printf("repository: %d packs (%s), %d never verified; at this budget each pack is verified about every %s\n",
			res.Packs, humanBytes(uint64(res.TotalBytes)), res.NeverVerified, fmtCycle(res.Cycle))
	}
	a.printWarnings(res)
}

// printWarnings lists the packs verify cannot read and the damage found by
// earlier runs, which this run did not print as problems.
func (a *cli) printWarnings(res *app.VerifyReport) {
	if a.jsonOut {
		return
	}
	if n := len(res.TooLarge); n > 0 && !a.quiet {
		fmt.Fprintf(a.errOut, "warning: %s larger than the whole --verify-budget and never verified (raise the budget)\n", plural(n, "pack is", "packs are"))
	}
	fresh := map[string]bool{}
	for _, p := range res.Problems {
		fresh[p.Object] = true
	}
	for _, d := range res.Damaged {
		if !fresh[d.Object] {
			fmt.Fprintf(a.errOut, "damaged: %s (found %s): %s\n", d.Object, d.FoundAt.Local().Format(time.DateTime), d.Problem)
		}
	}
}

// verifyLine is backup --verify's one-line summary.
func verifyLine(res *app.VerifyReport, opt verify.Options) string {
	if res.Stopped == verify.StopOff {
		return "verify: off (--verify-budget or --verify-requests is 0)"
	}
	if !res.WaitUntil.IsZero() {
		return "verify: " + verifySummary(res, opt)
	}
	return fmt.Sprintf("verify: %s; budget left %s and %s; %d of %s never verified",
		verifySummary(res, opt), humanBytes(uint64(res.BytesLeft)), plural(int(res.RequestsLeft), "request", "requests"),
		res.NeverVerified, plural(res.Packs, "pack", "packs"))
}

// verifySummary says in one line what a run checked.
func verifySummary(res *app.VerifyReport, opt verify.Options) string {
	if !res.WaitUntil.IsZero() {
		return "verified no pack: the budget is spent until " + res.WaitUntil.Local().Format("2006-01-02 15:04")
	}
	if len(res.Checked) == 0 {
		why := map[string]string{
			verify.StopBytes:    "the next pack does not fit in what is left of the budget",
			verify.StopRequests: "no request is left in the budget",
			verify.StopDone:     "every pack was verified within the last " + opt.Bytes.PeriodName(),
		}[res.Stopped]
		if res.Packs == 0 {
			why = "the repository has no packs"
		}
		return "verified no pack: " + why
	}
	bad := 0
	for _, c := range res.Checked {
		if !c.OK {
			bad++
		}
	}
	verdict := "intact"
	if bad > 0 {
		verdict = fmt.Sprintf("%d damaged or unreadable", bad)
	}
	return fmt.Sprintf("verified %s (%s): %s", plural(len(res.Checked), "pack", "packs"), humanBytes(uint64(res.Bytes)), verdict)
}

// plural returns "1 pack" or "n packs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// fmtCycle shows a duration in days, or hours below two days.
func fmtCycle(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	}
	return fmt.Sprintf("%d days", int((d+12*time.Hour)/(24*time.Hour)))
}

// verifyFailure returns the error that makes verify exit non-zero, naming
// the damaged packs, or nil.
func verifyFailure(res *app.VerifyReport) error {
	if res.OK() {
		return nil
	}
	var damaged, unread []string
	for _, d := range res.Damaged {
		damaged = append(damaged, d.Object)
	}
	for _, p := range res.Problems {
		if p.Kind == check.KindReadError && !slices.Contains(unread, p.Object) {
			unread = append(unread, p.Object)
		}
	}
	if len(damaged) == 0 && len(unread) == 0 {
		return fmt.Errorf("verify found %s (listed above)", plural(len(res.Problems), "problem", "problems"))
	}
	if len(damaged) == 0 {
		return fmt.Errorf("verify could not download %s (%s); they are tried again next time",
			plural(len(unread), "pack", "packs"), strings.Join(unread, ", "))
	}
	return fmt.Errorf("verify found damage in %s: %s; run `tidemark check --read-data` to see which files it affects, and `tidemark repair packs %s` to salvage their intact blobs",
		plural(len(damaged), "pack", "packs"), strings.Join(damaged, ", "), strings.Join(damaged, " "))
}
