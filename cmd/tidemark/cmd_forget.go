package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/retention"
)

func (a *cli) forgetCmd() *cobra.Command {
	var (
		p                 retention.Policy
		within, tiers, tz string
		groupBy           string
		dryRun, doPrune   bool
		pf                pruneFlags
		ff                filterFlags
	)
	cmd := &cobra.Command{
		Use:   "forget [SNAPSHOT-ID...]",
		Short: "Remove snapshots that a retention policy does not keep, or the snapshots named",
		Long: `Remove the snapshot records a retention policy does not keep, or the
snapshots named by ID (or unique prefix). Their data stays in the repository
until a prune removes what no snapshot uses (add --prune to do both).

Snapshots named by ID are removed even when their records cannot be read
(damaged); rules leave unreadable records alone. IDs and rules cannot be
combined.

A snapshot is kept when any rule keeps it; rules apply within each group
(--group-by, default host and paths). Calendar rules use the local time zone,
or --tz. The filters --host, --path and --tag limit the rules to the
snapshots they select; the others are left alone.

Examples:
  tidemark forget --keep-last 10 --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  tidemark forget --keep-within 2d --keep-tag release
  tidemark forget --host laptop --path /home/me --keep-daily 7
  tidemark forget --retention "1D:0s,7D:1h,1M:1D,1Y:1W,U:1M"
      within 1 day keep every snapshot, within 7 days one per hour, within a
      month one per day, within a year one per week, older: one per month
  tidemark forget --retention "7D:0s,U:1W"
      everything from the last week, one per week before that, forever
  tidemark forget 1a2b3c4d 5e6f7a8b
      remove these two snapshots`,
		Args: cobra.ArbitraryArgs,
		RunE: runE(func(ctx context.Context, args []string) error {
			if within != "" {
				d, err := retention.ParseWithin(within)
				if err != nil {
					return err
				}
				p.Within = d
			}
			if tiers != "" {
				ts, err := retention.ParseTiers(tiers)
				if err != nil {
					return err
				}
				p.Tiers = ts
			}
			p.Location = time.Local
			if tz != "" {
				loc, err := time.LoadLocation(tz)
				if err != nil {
					return fmt.Errorf("--tz %q: %w", tz, err)
				}
				p.Location = loc
			}
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt := app.ForgetOptions{Policy: p, Snapshots: args, Filter: f, GroupBy: groupBy, DryRun: dryRun}
			if err := opt.Validate(); err != nil {
				return err
			}
			if doPrune {
				popt, err := pf.options()
				if err != nil {
					return err
				}
				opt.Prune = &popt
			}
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, ferr := r.Forget(ctx, opt, a.report)
			if res == nil {
				return ferr
			}
			switch {
			case a.jsonOut && res.Prune != nil:
				if err := a.printJSON(res); err != nil {
					return err
				}
			case a.jsonOut:
				if err := a.printJSON(res.Verdicts); err != nil {
					return err
				}
			case len(args) > 0:
				a.printNamed(res, p.Location, dryRun)
				if ferr == nil && res.Prune != nil {
					a.printPrune(res.Prune, *opt.Prune)
				}
			default:
				a.printVerdicts(res, p.Location, dryRun)
				if ferr == nil && res.Prune != nil {
					a.printPrune(res.Prune, *opt.Prune)
				}
			}
			return ferr
		}),
	}
	f := cmd.Flags()
	f.IntVar(&p.Last, "keep-last", 0, "keep the newest N snapshots")
	f.StringVar(&within, "keep-within", "", "keep snapshots younger than this (e.g. 2d, 36h, 1d12h)")
	f.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last N hours that have one")
	f.IntVar(&p.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last N days that have one")
	f.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last N ISO weeks that have one")
	f.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last N months that have one")
	f.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last N years that have one")
	f.StringArrayVar(&p.Tags, "keep-tag", nil, "keep snapshots with this tag (repeatable)")
	f.StringVar(&tiers, "retention", "", `Duplicati-style tiers, e.g. "1D:0s,7D:1h,1M:1D,1Y:1W,U:1M" (units s m h D W M Y)`)
	f.StringVarP(&groupBy, "group-by", "g", "host,paths", "judge snapshots in groups of: host, paths, tags, any combination, or \"\" for one group")
	f.StringVar(&tz, "tz", "", "time zone of calendar rules (default: local)")
	f.BoolVarP(&dryRun, "dry-run", "n", false, "only show what would be forgotten and why each kept snapshot is kept")
	f.BoolVar(&doPrune, "prune", false, "prune afterwards (see tidemark prune; its options apply)")
	pf.register(cmd)
	ff.register(f)
	return cmd
}

// printNamed lists the snapshots forget was given by ID, then a summary.
func (a *cli) printNamed(res *app.ForgetResult, loc *time.Location, dryRun bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	for _, v := range res.Verdicts {
		switch {
		case !dryRun && !v.Removed:
			// Reported as a failure already.
		case v.Error != "":
			a.printf("%s unreadable snapshot record %s (%d bytes): %s\n", verb, v.ID, v.Size, displayText(v.Error))
		default:
			a.printf("%s\n", strings.TrimSpace(fmt.Sprintf("%s snapshot %s  %s  %s", verb, v.ID[:8], v.Time.In(loc).Format("2006-01-02 15:04:05"), displayText(v.Group))))
		}
	}
	switch {
	case dryRun:
		a.printf("dry run: %d snapshots would be forgotten\n", res.Forgotten)
	case res.Prune == nil:
		a.printf("forgot %d snapshots (their data stays in the repository until `tidemark prune`)\n", res.Removed)
	default:
		a.printf("forgot %d snapshots\n", res.Removed)
	}
}

// printVerdicts lists every snapshot's fate by group, then a summary.
func (a *cli) printVerdicts(res *app.ForgetResult, loc *time.Location, dryRun bool) {
	lastGroup := "\x00"
	for _, v := range res.Verdicts {
		if v.Group != lastGroup {
			lastGroup = v.Group
			group := v.Group
			if group == "" {
				group = "all snapshots"
			}
			a.printf("%s:\n", displayText(group))
		}
		verdict := "keep  "
		if !v.Keep {
			verdict = "forget"
			if dryRun {
				verdict = "would forget"
			}
		}
		a.printf("  %s %s  %s  %s\n", v.ID[:8], v.Time.In(loc).Format("2006-01-02 15:04:05"), verdict, strings.Join(v.Reasons, ", "))
	}
	switch {
	case dryRun:
		a.printf("dry run: %d of %d snapshots would be forgotten\n", res.Forgotten, len(res.Verdicts))
	case res.Prune == nil:
		a.printf("forgot %d of %d snapshots (their data stays in the repository until `tidemark prune`)\n", res.Removed, len(res.Verdicts))
	default:
		a.printf("forgot %d of %d snapshots\n", res.Removed, len(res.Verdicts))
	}
}
