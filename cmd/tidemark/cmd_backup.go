package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/archive"
	"github.com/tidemark/tidemark/internal/backup"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/scan"
	"github.com/tidemark/tidemark/internal/verify"
	"golang.org/x/term"
)

func (a *app) backupCmd() *cobra.Command {
	var opt backup.Options
	var excludeFiles []string
	var changedFrom, stateDir string
	var verifyAfter bool
	var vf verifyFlags
	cmd := &cobra.Command{
		Use:   "backup PATH...",
		Short: "Back up files and directories into a new snapshot",
		Args:  cobra.MinimumNArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			var vopt *verify.Options
			if verifyAfter {
				o, err := vf.options()
				if err != nil {
					return err
				}
				vopt = &o
			}
			for _, f := range excludeFiles {
				pats, err := scan.ReadPatternFile(f)
				if err != nil {
					return err
				}
				opt.Excludes = append(opt.Excludes, pats...)
			}
			opt.Paths = args
			if changedFrom != "" {
				list, err := changes.ReadList(changedFrom)
				if err != nil {
					return err
				}
				opt.Source = changes.ExternalList(changedFrom, list)
			} else {
				j, err := openJournal(stateDir)
				if err != nil {
					return err
				}
				if j != nil {
					opt.Source = changes.JournalSource(j, changes.DefaultFenceTimeout)
				}
			}
			return a.runBackup(ctx, opt, vopt)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opt.Excludes, "exclude", "e", nil, "exclude paths matching this glob (repeatable)")
	f.StringArrayVar(&excludeFiles, "exclude-file", nil, "read exclude patterns from a file (repeatable)")
	f.BoolVarP(&opt.OneFileSystem, "one-file-system", "x", false, "do not cross filesystem boundaries")
	f.BoolVar(&opt.ReadAll, "read-all", false, "read every file, even when the parent snapshot says it is unchanged")
	f.StringArrayVar(&opt.Tags, "tag", nil, "add a tag to the snapshot (repeatable)")
	f.StringVar(&opt.Host, "host", "", "record this host name instead of the machine's")
	f.StringVar(&opt.Scan, "scan", "auto", "auto: use the change journal when it proves an uninterrupted record, else scan fully; full; journal: fail instead of scanning fully")
	f.IntVar(&opt.Policy.Every, "full-scan-every", 0, "force a full scan after this many journal-driven backups (0: never)")
	f.DurationVar(&opt.Policy.MaxAge, "full-scan-max-age", 0, "force a full scan when the last one is older than this, e.g. 168h (0: never)")
	f.StringVar(&opt.Policy.Window, "full-scan-window", "", "daily window HH:MM-HH:MM (local time) in which backups scan fully")
	f.StringVar(&stateDir, "state", "", "the change journal's state directory, shared with `tidemark watch` (default $XDG_STATE_HOME/tidemark)")
	f.BoolVar(&verifyAfter, "verify", false, "after the backup, download and check a few packs within --verify-budget and --verify-requests (see tidemark verify --help)")
	vf.register(f)
	f.StringVar(&changedFrom, "changed-from", "", "file listing changed paths (one absolute path per line, e.g. from watchman): merge them into the parent snapshot instead of scanning (the rules of --scan auto apply: settings changes and the policy still force full scans)")
	return cmd
}

// runBackup makes a snapshot, then, with vopt, runs verify: a verify
// failure makes the command fail, but the snapshot stays.
func (a *app) runBackup(ctx context.Context, opt backup.Options, vopt *verify.Options) error {
	r, err := a.openRepo(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := a.openState(r)
	if err != nil {
		return err
	}
	if st != nil {
		defer st.Close()
	}
	prog := &archive.Progress{}
	opt.Progress = prog
	var bar *progressBar
	showBar := !a.quiet && !a.jsonOut && term.IsTerminal(int(os.Stderr.Fd()))
	opt.Started = func(p backup.Plan) {
		if !a.jsonOut && !a.quiet {
			parent := "none"
			if p.Parent != nil {
				parent = p.Parent.ID.Short()
			}
			if p.Declined != "" {
				fmt.Fprintf(a.out, "scan: the journal scan gave up (%s); starting over\n", p.Declined)
			}
			fmt.Fprintf(a.out, "scan: %s (%s), parent %s\n", p.Mode, p.Reason, parent)
		}
		if bar != nil {
			bar.stop()
		}
		if showBar {
			var estFiles, estBytes uint64
			if p.Parent != nil {
				estFiles, estBytes = p.Parent.Totals.Files, p.Parent.Totals.Bytes
			}
			bar = startProgress(os.Stderr, prog, estFiles, estBytes)
		}
	}
	res, err := backup.Run(ctx, r, st, opt)
	if bar != nil {
		bar.stop()
	}
	if err != nil {
		return err
	}
	sn := res.Snapshot
	failed := sn.Summary.Errors
	var vres verify.Result
	var verr error
	verified := false // verify ran, whatever it found
	runVerify := func() {
		if vopt == nil {
			return
		}
		vres, verr = a.runVerify(ctx, r, st, *vopt)
		switch {
		case verr == nil:
			verified = true
			verr = verifyFailure(vres)
		case !errors.Is(verr, verify.ErrNoLedger):
			verr = fmt.Errorf("verify: %w", verr)
		}
	}
	if a.jsonOut {
		runVerify()
		out := map[string]any{
			"snapshot": sn.ID, "parent": sn.Parent, "tree": sn.Tree, "roots": sn.Roots, "scan": sn.Scan,
			"totals": sn.Totals, "summary": sn.Summary, "errors": res.Errors,
		}
		if verified {
			out["verify"] = newVerifyJSON(vres, *vopt)
		}
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, e := range res.Errors {
			kind := "error"
			if e.Warning {
				kind = "warning"
			}
			fmt.Fprintf(a.errOut, "%s: %s: %s\n", kind, e.Path, e.Err)
		}
		s := sn.Summary
		a.printf("files: %d new, %d changed, %d unchanged\n", s.FilesNew, s.FilesChanged, s.FilesUnchanged)
		a.printf("dirs:  %d new, %d changed, %d unchanged\n", s.DirsNew, s.DirsChanged, s.DirsUnchanged)
		a.printf("read %s, added %s to the repository (%s before compression), in %s\n",
			humanBytes(s.BytesRead), humanBytes(s.BytesAdded), humanBytes(s.BytesAddedRaw), s.Duration.Round(time.Millisecond))
		a.printf("snapshot %s (%s scan): %s in %d files, %d dirs, %d other\n", sn.ID.Short(), sn.Scan.Mode, humanBytes(sn.Totals.Bytes), sn.Totals.Files, sn.Totals.Dirs, sn.Totals.Other)
		runVerify() // after the backup's summary, so that its problems follow it
		if verified {
			a.printf("%s\n", verifyLine(vres, *vopt))
			a.printWarnings(vres)
		}
	}
	if failed > 0 && !a.jsonOut {
		fmt.Fprintf(a.errOut, "tidemark: snapshot %s saved, but %d entries could not be read (listed above)\n", sn.ID.Short(), failed)
	}
	if verr != nil {
		// Damage in the repository outweighs files that could not be read.
		return fmt.Errorf("snapshot %s saved, but %w", sn.ID.Short(), verr)
	}
	if failed > 0 {
		return errPartial
	}
	return nil
}

// openJournal opens the change journal in dir (default: the standard state
// directory). No directory means no journal, not an error: the backup then
// scans fully and says why.
func openJournal(dir string) (*changes.Journal, error) {
	dir, err := journalStateDir(dir)
	if err != nil {
		return nil, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, nil
	}
	j, err := changes.OpenJournal(dir)
	if err != nil {
		return nil, fmt.Errorf("open change journal in %s: %w", dir, err)
	}
	return j, nil
}
