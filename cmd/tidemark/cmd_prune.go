package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/prune"
)

// pruneFlags are the options shared by prune and forget --prune.
type pruneFlags struct {
	maxUnused     string
	maxRepackSize string
	repackSmall   bool
	maxWait       time.Duration
	poll          time.Duration
}

func (pf *pruneFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&pf.maxUnused, "max-unused", "5%", "repack packs whose unused share exceeds this (e.g. 5%, 0%, 100% to never repack for space)")
	f.StringVar(&pf.maxRepackSize, "max-repack-size", "", "read at most this much packed data for repacking per run (e.g. 2GiB; default no limit)")
	f.BoolVar(&pf.repackSmall, "repack-small", true, "combine packs under a quarter of the target pack size")
	f.DurationVar(&pf.maxWait, "max-wait", time.Hour, "how long to wait for backups that started before the index was replaced; deletion is left to the next prune after that")
	f.DurationVar(&pf.poll, "poll", 2*time.Second, "how often to look at the locks while waiting")
	_ = f.MarkHidden("poll")
}

func (pf *pruneFlags) options() (prune.Options, error) {
	var opt prune.Options
	s := strings.TrimSpace(pf.maxUnused)
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	switch {
	case err != nil || !pct || math.IsNaN(v) || math.IsInf(v, 0):
		return opt, fmt.Errorf("--max-unused %q: want a percentage such as 5%%", pf.maxUnused)
	case v < 0 || v > 100:
		return opt, fmt.Errorf("--max-unused %q: want a percentage from 0%% to 100%%: a pack cannot be more than all unused (100%% never repacks for space)", pf.maxUnused)
	}
	opt.MaxUnused = v / 100
	if pf.maxRepackSize != "" {
		n, err := humanize.ParseBytes(pf.maxRepackSize)
		if err != nil || n == 0 {
			return opt, fmt.Errorf("--max-repack-size %q: want a size such as 500MiB or 2GiB", pf.maxRepackSize)
		}
		opt.MaxRepackBytes = int64(n)
	}
	if pf.maxWait < 0 {
		return opt, fmt.Errorf("--max-wait %s: must not be negative", pf.maxWait)
	}
	opt.RepackSmall, opt.MaxWait, opt.Poll = pf.repackSmall, pf.maxWait, pf.poll
	return opt, nil
}

func (a *cli) pruneCmd() *cobra.Command {
	var pf pruneFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove data no snapshot uses, repack wasteful packs and consolidate the index",
		Long: `Prune deletes packs whose blobs no snapshot uses, repacks packs with more
unused space than --max-unused, combines small packs, consolidates the index and
removes packs left by killed backups.

Backups of other clients may run meanwhile: prune never blocks them. Before
deleting, it waits (up to --max-wait) for the clients that started before it
replaced the index; what it cannot delete in time, the next prune deletes.
Killed at any point, prune leaves a consistent repository.`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			opt, err := pf.options()
			if err != nil {
				return err
			}
			opt.DryRun = dryRun
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.Prune(ctx, opt, a.report)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printPrune(res, opt)
			return nil
		}),
	}
	pf.register(cmd)
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "only show what would be deleted and repacked")
	return cmd
}

// printPrune shows what a prune found and did.
func (a *cli) printPrune(res *prune.Result, opt prune.Options) {
	b := func(n int64) string { return humanBytes(uint64(n)) }
	a.printf("%d snapshots, %d packs, %s stored, %s of it unused\n", res.Snapshots, res.Packs, b(res.Bytes), b(res.UnusedBytes))
	if res.Unindexed > 0 {
		a.printf("%d packs were in no index (left by interrupted runs); %d of them held needed data and were indexed again\n", res.Unindexed, res.Reindexed)
	}
	if res.MissingPacks > 0 || res.DamagedIndexFiles > 0 {
		a.printf("dropped %d missing packs and %d damaged index files from the index (no snapshot needed them)\n", res.MissingPacks, res.DamagedIndexFiles)
	}
	verb := map[bool]string{true: "would ", false: ""}[res.DryRun]
	a.printf("%sdelete %d packs (%s), %srepack %d packs (%s read, %s of used blobs copied)\n",
		verb, res.DeletePacks, b(res.DeleteBytes), verb, res.RepackPacks, b(res.RepackBytes), b(res.CopiedBytes))
	if res.DryRun {
		a.printf("dry run: nothing changed; %s unused would remain\n", b(res.RemainingUnused))
		return
	}
	if res.IndexFilesWritten > 0 || res.IndexFilesRemoved > 0 {
		a.printf("index: %d files replaced by %d\n", res.IndexFilesRemoved, res.IndexFilesWritten)
	}
	if res.Resurrected > 0 {
		a.printf("kept %d packs that backups written meanwhile use\n", res.Resurrected)
	}
	if len(res.Deferred) > 0 {
		a.printf("%d packs are left for the next prune: clients that started earlier were still running after %s\n", len(res.Deferred), opt.MaxWait)
	}
	a.printf("deleted %d packs (%s) and wrote %s of repacked blobs: %s freed; %s unused remains\n",
		res.Deleted, b(res.FreedBytes), b(res.CopiedBytes), b(max(0, res.FreedBytes-res.CopiedBytes)), b(res.RemainingUnused))
}
