package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/prune"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/retention"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// forgetJSON is one snapshot's fate in `forget --json`.
type forgetJSON struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Group   string    `json:"group"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
	Removed bool      `json:"removed"`
}

func (a *app) forgetCmd() *cobra.Command {
	var (
		p                 retention.Policy
		within, tiers, tz string
		groupBy           string
		dryRun, doPrune   bool
		pf                pruneFlags
	)
	cmd := &cobra.Command{
		Use:   "forget",
		Short: "Remove snapshots that a retention policy does not keep",
		Long: `Remove the snapshot records a retention policy does not keep. Their data
stays in the repository until a prune removes what no snapshot uses
(add --prune to do both).

A snapshot is kept when any rule keeps it; rules apply within each group
(--group-by, default host and paths). Calendar rules use the local time zone,
or --tz.

Examples:
  tidemark forget --keep-last 10 --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  tidemark forget --keep-within 2d --keep-tag release
  tidemark forget --retention "1D:0s,7D:1h,1M:1D,1Y:1W,U:1M"
      within 1 day keep every snapshot, within 7 days one per hour, within a
      month one per day, within a year one per week, older: one per month
  tidemark forget --retention "7D:0s,U:1W"
      everything from the last week, one per week before that, forever`,
		Args: cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
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
					return fmt.Errorf("--retention: %w", err)
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
			if p.Empty() {
				return errors.New("forget: no policy given (use --keep-* or --retention); refusing to forget every snapshot")
			}
			for _, n := range []int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
				if n < 0 {
					return errors.New("forget: --keep-* counts must not be negative")
				}
			}
			group, err := grouper(groupBy)
			if err != nil {
				return err
			}
			r, err := a.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			var popt prune.Options
			if doPrune {
				if popt, err = pf.options(); err != nil {
					return err
				}
			}
			var lock *repo.Lock
			if !dryRun {
				// Forget only removes snapshot records: backups may go on.
				if lock, err = r.LockMode(ctx, repo.LockPrune, "forget"); err != nil {
					return err
				}
				defer lock.Unlock()
			}
			sns, errs, err := snapshot.All(ctx, r)
			if err != nil {
				return err
			}
			for _, e := range errs {
				fmt.Fprintf(a.errOut, "warning: %v (left alone)\n", e)
			}
			items := make([]retention.Item, len(sns))
			for i, sn := range sns {
				items[i] = retention.Item{ID: sn.ID.String(), Time: sn.Time, Group: group(sn), Tags: sn.Tags}
			}
			ds := retention.Apply(items, p, time.Now())
			var out []forgetJSON
			forgotten, removed, failed := 0, 0, 0
			lastGroup := "\x00"
			for _, d := range ds {
				fj := forgetJSON{ID: d.Item.ID, Time: d.Item.Time, Group: d.Item.Group, Keep: d.Keep, Reasons: d.Reasons}
				if !d.Keep {
					forgotten++
				}
				if !d.Keep && !dryRun {
					if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.Snapshot, Name: d.Item.ID}); err != nil && !errors.Is(err, backend.ErrNotFound) {
						fmt.Fprintf(a.errOut, "error: remove snapshot %s: %v\n", d.Item.ID[:8], err)
						failed++
					} else {
						fj.Removed = true
						removed++
					}
				}
				out = append(out, fj)
				if a.jsonOut {
					continue
				}
				if d.Item.Group != lastGroup {
					lastGroup = d.Item.Group
					a.printf("%s:\n", describeGroup(d.Item.Group))
				}
				verdict := "keep  "
				if !d.Keep {
					verdict = "forget"
					if dryRun {
						verdict = "would forget"
					}
				}
				a.printf("  %s %s  %s  %s\n", d.Item.ID[:8], d.Item.Time.In(p.Location).Format("2006-01-02 15:04:05"), verdict, strings.Join(d.Reasons, ", "))
			}
			pruning := doPrune && !dryRun && failed == 0
			switch {
			case a.jsonOut && pruning:
				// Printed with the prune's result, as one document.
			case a.jsonOut:
				if err := a.printJSON(out); err != nil {
					return err
				}
			case dryRun:
				a.printf("dry run: %d of %d snapshots would be forgotten\n", forgotten, len(ds))
			case !doPrune:
				a.printf("forgot %d of %d snapshots (their data stays in the repository until `tidemark prune`)\n", removed, len(ds))
			default:
				a.printf("forgot %d of %d snapshots\n", removed, len(ds))
			}
			if failed > 0 {
				return fmt.Errorf("forget: %d snapshots could not be removed", failed)
			}
			if pruning {
				return a.prune(ctx, r, lock, popt, map[string]any{"forget": out})
			}
			return nil
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
	f.StringVar(&groupBy, "group-by", "host,paths", "judge snapshots in groups of: host, paths, tags, any combination, or \"\" for one group")
	f.StringVar(&tz, "tz", "", "time zone of calendar rules (default: local)")
	f.BoolVarP(&dryRun, "dry-run", "n", false, "only show what would be forgotten and why each kept snapshot is kept")
	f.BoolVar(&doPrune, "prune", false, "prune afterwards (see `tidemark prune`; its options apply)")
	pf.register(cmd)
	return cmd
}

// grouper returns the group key function for --group-by.
func grouper(spec string) (func(*snapshot.Snapshot) string, error) {
	var parts []string
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case "":
		case "host", "paths", "tags":
			parts = append(parts, p)
		default:
			return nil, fmt.Errorf("--group-by %q: unknown field %q (want host, paths, tags)", spec, p)
		}
	}
	return func(sn *snapshot.Snapshot) string {
		var key []string
		for _, p := range parts {
			switch p {
			case "host":
				key = append(key, "host="+sn.Host)
			case "paths":
				key = append(key, "paths="+strings.Join(sn.Roots, ":"))
			case "tags":
				tags := slices.Clone(sn.Tags)
				slices.Sort(tags)
				key = append(key, "tags="+strings.Join(tags, ":"))
			}
		}
		return strings.Join(key, " ")
	}, nil
}

func describeGroup(g string) string {
	if g == "" {
		return "all snapshots"
	}
	return g
}
