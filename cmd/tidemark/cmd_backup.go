package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/verify"
	"golang.org/x/term"
)

func (a *cli) backupCmd() *cobra.Command {
	var opt app.BackupOptions
	var verifyAfter bool
	var vf verifyFlags
	cmd := &cobra.Command{
		Use:   "backup PATH...",
		Short: "Back up files and directories into a new snapshot",
		Args:  needArgs(1, -1, "give the paths to back up, e.g. tidemark backup ~/work"),
		RunE: runE(func(ctx context.Context, args []string) error {
			opt.Paths = args
			opt.Tags = splitTags(opt.Tags)
			return a.runBackup(ctx, opt, verifyAfter, vf)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opt.Excludes, "exclude", "e", nil, "exclude paths matching this glob (repeatable)")
	f.StringArrayVar(&opt.ExcludeFiles, "exclude-file", nil, "read exclude patterns from a file (repeatable)")
	f.BoolVarP(&opt.OneFileSystem, "one-file-system", "x", false, "do not cross filesystem boundaries")
	f.BoolVar(&opt.ReadAll, "read-all", false, "read every file, even when the parent snapshot says it is unchanged")
	f.StringArrayVar(&opt.Tags, "tag", nil, "tag the snapshot with the tags of this `taglist`, tag[,tag...] (repeatable)")
	f.StringVar(&opt.Host, "host", "", "record this host name instead of the machine's")
	f.StringVar(&opt.Scan, "scan", "auto", "auto: use the change journal when it proves an uninterrupted record, else scan fully; full; journal: fail instead of scanning fully")
	f.IntVar(&opt.Policy.Every, "full-scan-every", 0, "force a full scan after this many journal-driven backups (0: never)")
	f.DurationVar(&opt.Policy.MaxAge, "full-scan-max-age", 0, "force a full scan when the last one is older than this, e.g. 168h (0: never)")
	f.StringVar(&opt.Policy.Window, "full-scan-window", "", "daily window HH:MM-HH:MM (local time) in which backups scan fully")
	f.StringVar(&opt.StateDir, "state", "", "the change journal's state directory, shared with tidemark watch (default $XDG_STATE_HOME/tidemark)")
	f.BoolVar(&verifyAfter, "verify", false, "after the backup, download and check a few packs within --verify-budget and --verify-requests (see tidemark verify --help)")
	vf.register(f)
	f.StringVar(&opt.ChangedFrom, "changed-from", "", "file listing changed paths (one absolute path per line, e.g. from watchman): merge them into the parent snapshot instead of scanning (the rules of --scan auto apply: settings changes and the policy still force full scans)")
	return cmd
}

// backupOutput is backup's --json output.
type backupOutput struct {
	*app.BackupResult
	Verify *app.VerifyReport `json:"verify,omitempty"`
}

// runBackup makes a snapshot, then, with verifyAfter, runs verify: a
// verify failure makes the command fail, but the snapshot stays.
func (a *cli) runBackup(ctx context.Context, opt app.BackupOptions, verifyAfter bool, vf verifyFlags) error {
	var vopt *verify.Options
	if verifyAfter {
		o, err := vf.options()
		if err != nil {
			return err
		}
		vopt = &o
	}
	r, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	showBar := !a.quiet && !a.jsonOut && term.IsTerminal(int(os.Stderr.Fd()))
	var bar *progressBar
	opt.Events = func(ev app.Event) {
		switch e := ev.(type) {
		case app.ScanStarted:
			if bar != nil {
				bar.clear()
			}
			if !a.jsonOut && !a.quiet {
				parent := "none"
				if e.Parent != nil {
					parent = e.Parent.Short()
				}
				if e.Declined != "" {
					fmt.Fprintf(a.out, "scan: the journal scan gave up (%s); starting over\n", displayText(e.Declined))
				}
				fmt.Fprintf(a.out, "scan: %s (%s), parent %s\n", e.Mode, displayText(e.Reason), parent)
			}
			if showBar {
				width, _, err := term.GetSize(int(os.Stderr.Fd()))
				if err != nil {
					width = 0
				}
				bar = &progressBar{w: os.Stderr, width: width, files: e.EstFiles, bytes: e.EstBytes}
			}
		case app.Progress:
			if bar != nil {
				bar.draw(e)
			}
		default:
			a.report(ev)
		}
	}
	res, err := r.Backup(ctx, opt)
	if bar != nil {
		bar.clear()
	}
	if err != nil {
		return a.backupFailed(r, err)
	}
	sn := res.Snapshot
	var vres *app.VerifyReport
	var verr error
	runVerify := func() {
		if vopt == nil {
			return
		}
		vres, verr = r.Verify(ctx, *vopt, a.report)
		switch {
		case verr == nil:
			verr = verifyFailure(vres)
		case errors.Is(verr, app.ErrNoLedger):
			// Reported with its own message, after the backup's.
		default:
			verr = fmt.Errorf("verify: %w", verr)
		}
	}
	if a.jsonOut {
		runVerify()
		if err := a.printJSON(backupOutput{BackupResult: res, Verify: vres}); err != nil {
			return err
		}
	} else {
		for _, e := range res.Errors {
			kind := "error"
			if e.Warning {
				kind = "warning"
			}
			fmt.Fprintf(a.errOut, "%s: %s: %s\n", kind, displayPath(e.Path), displayText(e.Err))
		}
		s := sn.Summary
		a.printf("files: %d new, %d changed, %d unchanged\n", s.FilesNew, s.FilesChanged, s.FilesUnchanged)
		a.printf("dirs:  %d new, %d changed, %d unchanged\n", s.DirsNew, s.DirsChanged, s.DirsUnchanged)
		a.printf("read %s, added %s to the repository (%s before compression), in %s\n",
			humanBytes(s.BytesRead), humanBytes(s.BytesAdded), humanBytes(s.BytesAddedRaw), s.Duration.Round(time.Millisecond))
		a.printf("snapshot %s (%s scan): %s in %d files, %d dirs, %d other\n", sn.ID.Short(), sn.Scan.Mode, humanBytes(sn.Totals.Bytes), sn.Totals.Files, sn.Totals.Dirs, sn.Totals.Other)
		runVerify() // after the backup's summary, so that its problems follow it
		if vres != nil {
			a.printf("%s\n", verifyLine(vres, *vopt))
			a.printWarnings(vres)
		}
	}
	if res.Partial() && !a.jsonOut {
		fmt.Fprintf(a.errOut, "tidemark: snapshot %s saved, but %d entries could not be read (listed above)\n", sn.ID.Short(), sn.Summary.Errors)
	}
	if verr != nil {
		// Damage in the repository outweighs files that could not be read.
		return fmt.Errorf("snapshot %s saved, but %w", sn.ID.Short(), verr)
	}
	if res.Partial() {
		return errPartial
	}
	return nil
}

// backupFailed says whether the failed backup left a snapshot: an error
// after the snapshot was saved names the state database (the backup knows
// it only as an open handle) and lists the entries that could not be
// read; any other error means no snapshot was written.
func (a *cli) backupFailed(r *app.Repo, err error) error {
	var ce *backup.CommittedError
	if !errors.As(err, &ce) {
		return fmt.Errorf("no snapshot was written: %w", err)
	}
	if dir, derr := r.CacheDir(); derr == nil && dir != "" && ce.Database == "" {
		// The state database's place in the cache directory (README: Local state).
		ce.Database = filepath.Join(dir, "state.db")
	}
	if !a.jsonOut {
		for _, e := range ce.Result.Errors {
			kind := "error"
			if e.Warning {
				kind = "warning"
			}
			fmt.Fprintf(a.errOut, "%s: %s: %s\n", kind, displayPath(e.Path), displayText(e.Err))
		}
		if n := ce.Result.Snapshot.Summary.Errors; n > 0 {
			fmt.Fprintf(a.errOut, "tidemark: snapshot %s saved, but %d entries could not be read (listed above)\n", ce.Result.Snapshot.ID.Short(), n)
		}
	}
	return err
}
