package main

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/restore"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// restoreJSON is restore --json's output; a dry run lists its entries.
type restoreJSON struct {
	*app.RestoreResult
	Entries []restore.Entry `json:"entries,omitempty"`
}

func (a *cli) restoreCmd() *cobra.Command {
	var opt app.RestoreOptions
	var ff filterFlags
	var overwrite string
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT[:DIR] --target DIR",
		Short: "Restore a snapshot, or parts of it, into a directory",
		Long: `Restore SNAPSHOT, an ID, a unique prefix of one, or "latest": the newest
snapshot the filters (--host, --path, --tag) select, into DIR, where its
paths are recreated below DIR (/home/me/work becomes DIR/home/me/work).
SNAPSHOT:DIR restores the contents of the snapshot's directory DIR instead
(latest:/home/me/work puts work's contents in the target).

--include and --exclude take patterns, matched against the paths as they
will be below the target ("/home/me/work/a.txt"; with SNAPSHOT:DIR, from
DIR): one without '/' matches a name at any depth ("*.odt"), one with '/'
the end of a path ("work/*.odt"), and a leading '/' anchors it
("/home/*/work"); '*', '?', [a-z] and '**' as in find. An included
directory is restored whole, an excluded one not at all; exclusion wins.
An anchored --include without wildcards must exist in the snapshot.

Entries already at the target as the snapshot has them (files with the
same content, compared chunk by chunk against the snapshot without
downloading it; symlinks with the same target) are kept and counted as
unchanged, so restoring again into the same place is not an error. What
happens to other existing entries --overwrite says:
  (not given)   they are left alone and reported as errors (exit 1)
  always        they are replaced (--overwrite alone means always)
  if-changed    like always, but a file with the snapshot's size and
                mtime is taken as unchanged without being read
  if-newer      they are replaced only when the snapshot's entry is newer
                (mtime), else left alone and counted as skipped
  never         they are all left alone and counted as skipped
Directories are merged into, never replaced by a file; symlinks at the
target are never followed.

--dry-run lists what a restore would restore, replace, keep and skip,
reading the target and comparing existing files, and writes nothing.
--verify reads every file back after writing it (and every file kept
without reading it) and compares it with the snapshot; a difference is
listed and the exit code is 1.`,
		Example: `  tidemark restore latest --target /tmp/restore
  tidemark restore latest --path /etc --host server --target /tmp/etc
  tidemark restore latest:/home/me/work --target ~/work --include '*.odt' --exclude '/old'
  tidemark restore 1a2b3c4d --target / --include /home/me/work/report.odt --overwrite
  tidemark restore latest --target ~/work --overwrite if-newer --dry-run`,
		Args: needArgs(1, 2, "give the snapshot to restore (an ID, a unique prefix or latest), e.g. tidemark restore latest --target /tmp/restore"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			args, mode, err := overwriteMode(cmd, args, overwrite)
			if err != nil {
				return err
			}
			f, err := ff.filter()
			if err != nil {
				return err
			}
			opt.Snapshot, opt.Filter, opt.Overwrite = args[0], f, mode
			return a.restore(ctx, opt)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opt.Target, "target", "t", "", "directory to restore into")
	fl.StringArrayVarP(&opt.Include, "include", "i", nil, "restore only what matches this `PATTERN` (repeatable), e.g. /home/me/docs or '*.odt'")
	fl.StringArrayVarP(&opt.Exclude, "exclude", "e", nil, "do not restore what matches this `PATTERN` (repeatable)")
	fl.StringVar(&overwrite, "overwrite", "", "what to do with existing entries that differ: `MODE` always (the default when given alone), if-changed, if-newer or never")
	fl.Lookup("overwrite").NoOptDefVal = "always"
	fl.BoolVar(&opt.DryRun, "dry-run", false, "say what would be restored, replaced, kept and skipped; write nothing")
	fl.BoolVar(&opt.Verify, "verify", false, "read every restored file back and compare it with the snapshot")
	ff.register(fl)
	return cmd
}

// overwriteMode parses --overwrite. The flag was a boolean before it took
// restic's modes, so "--overwrite" alone still works (as always). That
// needs a value given to it with '=' ("--overwrite=never"), and restic's
// users write "--overwrite never", which leaves "never" among the
// arguments: a mode name cannot be a snapshot ID (they are hex), so it is
// taken as the flag's value there. "true" and "false", which the boolean
// accepted, mean always and the default.
func overwriteMode(cmd *cobra.Command, args []string, value string) ([]string, restore.Overwrite, error) {
	if len(args) == 2 {
		i := slices.IndexFunc(args, func(s string) bool { _, err := restore.ParseOverwrite(s); return err == nil })
		if !cmd.Flags().Changed("overwrite") || value != "always" || i < 0 {
			return nil, 0, fmt.Errorf("restore: too many arguments (%q); give the snapshot to restore (an ID, a unique prefix or latest), e.g. tidemark restore latest --target /tmp/restore", args[1])
		}
		value = args[i]
		args = slices.Delete(slices.Clone(args), i, i+1)
	}
	switch value {
	case "", "false":
		return args, restore.OverwriteRefuse, nil
	case "true":
		return args, restore.OverwriteAlways, nil
	}
	mode, err := restore.ParseOverwrite(value)
	return args, mode, err
}

func (a *cli) restore(ctx context.Context, opt app.RestoreOptions) error {
	var mu sync.Mutex
	var entries []restore.Entry
	if opt.DryRun {
		opt.Report = func(e restore.Entry) {
			mu.Lock()
			defer mu.Unlock()
			if a.jsonOut {
				entries = append(entries, e)
				return
			}
			size := ""
			if e.Type == snapshot.File {
				size = " (" + humanBytes(e.Size) + ")"
			}
			a.printf("would %-7s %s%s\n", e.Action, displayPath(e.Path), size)
		}
	}
	r, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Restore(ctx, opt)
	if err != nil {
		return err
	}
	for _, p := range res.Unmatched {
		fmt.Fprintf(a.errOut, "warning: --include %s matched nothing in the snapshot\n", displayPath(p))
	}
	if a.jsonOut {
		if err := a.printJSON(restoreJSON{RestoreResult: res, Entries: entries}); err != nil {
			return err
		}
	} else {
		for _, e := range res.Errors {
			fmt.Fprintf(a.errOut, "error: %s: %s\n", displayPath(e.Path), displayText(e.Err))
		}
		for _, e := range res.Mismatches {
			fmt.Fprintf(a.errOut, "mismatch: %s: %s\n", displayPath(e.Path), displayText(e.Err))
		}
		verb, from := "restored", "from snapshot"
		if res.DryRun {
			verb = "would restore"
		}
		if res.Subpath != "" {
			from = "from " + displayPath(res.Subpath) + " of snapshot"
		}
		a.printf("%s %d files, %d dirs, %d other entries, %s %s %s to %s\n", verb,
			res.Files, res.Dirs, res.Other, humanBytes(res.Bytes), from, res.Snapshot.Short(), displayPath(res.Target))
		if res.Replaced > 0 {
			a.printf("%d existing entries %s replaced\n", res.Replaced, wouldBe(res.DryRun, "were", "would be"))
		}
		if res.Unchanged > 0 {
			a.printf("%d entries (%s) %s already there unchanged and %s\n", res.Unchanged, humanBytes(res.UnchangedBytes),
				wouldBe(res.DryRun, "were", "are"), wouldBe(res.DryRun, "kept", "would be kept"))
		}
		if res.Skipped > 0 {
			a.printf("%d existing entries %s left alone (--overwrite %s)\n", res.Skipped, wouldBe(res.DryRun, "were", "would be"), opt.Overwrite)
		}
		if opt.Verify && !res.DryRun {
			a.printf("verified %d files (%s): %d differ from the snapshot\n", res.Verified, humanBytes(res.VerifiedBytes), len(res.Mismatches))
		}
	}
	switch {
	case len(res.Errors) > 0 && res.DryRun:
		return fmt.Errorf("restore --dry-run: %d entries could not be restored", len(res.Errors))
	case len(res.Errors) > 0:
		return fmt.Errorf("restore: %d entries could not be restored", len(res.Errors))
	case len(res.Mismatches) > 0:
		return fmt.Errorf("restore --verify: %d files differ from the snapshot", len(res.Mismatches))
	}
	return nil
}

func wouldBe(dry bool, done, would string) string {
	if dry {
		return would
	}
	return done
}
