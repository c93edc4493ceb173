package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/api"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/config"
	"github.com/tidemark/tidemark/internal/daemon"
)

// statusOutput is status --json.
type statusOutput struct {
	// Running: the daemon answered; otherwise the jobs are as its database
	// last recorded them.
	Running bool                `json:"running"`
	Daemon  daemon.DaemonStatus `json:"daemon"`
	Jobs    []daemon.JobStatus  `json:"jobs"`
}

func (a *cli) statusCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "status [--config FILE]",
		Short: "Show how fresh each job of tidemark run is: recovery point, last backup, next full scan",
		Long: `Status asks the running tidemark run (through its API, with the token of the
configuration's server.token_file) about every job: its recovery point (the
age of the oldest change not yet in a snapshot), the last backup's time, scan
mode and reason, failures, when the forced-full-scan policy next applies and
the verify budget used. When no daemon answers, it shows what the daemon
database last recorded, and says so.`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			out, err := daemonStatus(ctx, configPath(path))
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(out)
			}
			a.printStatus(out, time.Now())
			return nil
		}),
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "configuration file (as for tidemark run)")
	return cmd
}

// daemonStatus asks the running daemon, or reads its database.
func daemonStatus(ctx context.Context, path string) (*statusOutput, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	stateDir := cfg.Server.StateDir
	if stateDir == "" {
		if stateDir, err = changes.DefaultStateDir(); err != nil {
			return nil, err
		}
	}
	if cfg.Server.Listen != "" {
		c, err := api.NewClient(cfg.Server, tokenFile(cfg.Server, stateDir))
		if err == nil {
			var resp api.StatusResponse
			err = c.Get(ctx, "/api/v1/status", &resp)
			if err == nil {
				return &statusOutput{Running: true, Daemon: resp.Daemon, Jobs: resp.Jobs}, nil
			}
		}
		if !errors.Is(err, api.ErrNotRunning) && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	ds, jobs, err := daemon.OfflineStatus(ctx, cfg, stateDir, time.Now())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tidemark run is not running and has never run with the state directory %s", stateDir)
	}
	if err != nil {
		return nil, err
	}
	return &statusOutput{Daemon: ds, Jobs: jobs}, nil
}

func ago(t time.Time, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return shortDuration(d) + " ago"
}

// shortDuration rounds d for reading: seconds under a minute, minutes under
// an hour, and so on.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func (a *cli) printStatus(s *statusOutput, now time.Time) {
	local := func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }
	if s.Running {
		w := "watcher " + s.Daemon.WatcherNote
		if !s.Daemon.WatcherUp {
			w = "WATCHER DOWN: " + s.Daemon.WatcherNote
		}
		a.printf("tidemark run: running since %s (pid %d, %s), %s\n", local(s.Daemon.Started), s.Daemon.PID, s.Daemon.Version, w)
	} else {
		last := "never"
		if !s.Daemon.Started.IsZero() {
			last = "last alive " + local(s.Daemon.Started)
		}
		a.printf("tidemark run: NOT RUNNING (%s); the jobs as it left them:\n", last)
	}
	for _, j := range s.Jobs {
		rp := time.Duration(j.RecoveryPoint * float64(time.Second))
		line := fmt.Sprintf("%s: %s, recovery point %s", j.Name, j.State, shortDuration(rp))
		if j.UnprotectedSince != nil {
			line += fmt.Sprintf(" (unprotected since %s: %s)", local(*j.UnprotectedSince), j.UnprotectedWhy)
		} else {
			line += " (every change seen is in a snapshot)"
		}
		if j.Alerting {
			line += " ALERTING"
		}
		a.printf("%s\n", displayText(line))
		if b := j.LastBackup; b != nil {
			a.printf("  last backup %s (%s): snapshot %.8s, %s scan (%s), %d new, %d changed files, %s added in %s\n",
				local(b.Finished), ago(b.Finished, now), b.Snapshot, b.Mode, displayText(b.ScanReason), b.FilesNew, b.FilesChanged,
				humanBytes(b.BytesAdded), b.Duration.Round(time.Millisecond))
			a.printf("    started because: %s\n", displayText(b.Reason))
			if b.Warning != "" {
				a.printf("    warning: %s\n", displayText(b.Warning))
			}
		} else {
			a.printf("  no backup yet\n")
		}
		if j.Running != "" && j.RunningSince != nil {
			a.printf("  running: %s since %s\n", j.Running, local(*j.RunningSince))
		}
		if j.Failures > 0 {
			retry := ""
			if j.RetryAt != nil {
				retry = ", next attempt " + local(*j.RetryAt)
			}
			a.printf("  FAILING: %d in a row%s: %s\n", j.Failures, retry, displayText(j.LastError))
		}
		if j.NextRun != nil {
			a.printf("  next run: %s\n", local(*j.NextRun))
		}
		a.printf("  full scan: %s\n", j.FullScanNote)
		if v := j.Verify; v != nil {
			a.printf("  verify: %s downloaded of %s, %d of %s requests (%d packs, %d never verified, %d damaged)\n",
				humanBytes(uint64(v.WindowBytes)), v.Budget, v.WindowRequests, v.Requests, v.Packs, v.NeverVerified, v.Damaged)
		}
		if f := j.LastForget; f != nil {
			pruned := ""
			if f.Pruned {
				pruned = fmt.Sprintf(", pruned (%s freed)", humanBytes(uint64(f.FreedBytes)))
			}
			a.printf("  last forget %s: kept %d, removed %d%s\n", local(f.Time), f.Kept, f.Removed, pruned)
		}
	}
	if len(s.Jobs) == 0 {
		a.printf("no jobs\n")
	}
}
