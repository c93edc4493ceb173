package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/check"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/restore"
)

// demoPassword is the demo repository's password: the demo prints it.
const demoPassword = "demo password"

func (a *cli) demoCmd() *cobra.Command {
	var dir string
	var files int
	var clean, keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Generate a sample tree, back it up twice into a local repository, restore it and verify the result",
		Long: `Generate a sample tree, back it up twice into a new local repository (with
some files changed in between), restore it, compare the result with the
source byte for byte, and check the repository. The directory is kept
(--clean removes it), and the commands to explore it are printed.`,
		Args: noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			created := false
			if dir == "" {
				d, err := os.MkdirTemp("", "tidemark-demo-")
				if err != nil {
					return err
				}
				dir, created = d, true
			}
			err := a.runDemo(ctx, dir, files, !clean)
			if clean {
				a.cleanDemo(dir, created)
			}
			return err
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work in this directory (default: a new temporary one)")
	cmd.Flags().IntVar(&files, "files", 5000, "number of files in the sample tree")
	cmd.Flags().BoolVar(&clean, "clean", false, "remove what the demo made when it is done")
	cmd.Flags().BoolVar(&keep, "keep", true, "keep the directory (the default now)")
	_ = cmd.Flags().MarkDeprecated("keep", "the directory is kept unless --clean is given")
	return cmd
}

// demoParts are what the demo makes in its directory.
var demoParts = []string{"source", "repo", "restore", "cache"}

// cleanDemo removes the demo's directory when it made it, else only what
// it made inside (a --dir given may hold other things).
func (a *cli) cleanDemo(dir string, created bool) {
	remove := []string{dir}
	if !created {
		remove = remove[:0]
		for _, p := range demoParts {
			remove = append(remove, filepath.Join(dir, p))
		}
	}
	for _, p := range remove {
		if err := os.RemoveAll(p); err != nil {
			fmt.Fprintf(a.errOut, "warning: --clean: %s\n", displayText(err.Error()))
		}
	}
}

func (a *cli) runDemo(ctx context.Context, dir string, files int, keep bool) error {
	src, repoDir, target := filepath.Join(dir, "source"), filepath.Join(dir, "repo"), filepath.Join(dir, "restore")
	a.printf("demo in %s\n", displayPath(dir))
	gs, err := gentree.Generate(src, gentree.Spec{Files: files, Seed: 1})
	if err != nil {
		return fmt.Errorf("generate sample tree: %w", err)
	}
	a.printf("generated %d files (%s) in %d directories under %s\n", gs.Files, humanBytes(uint64(gs.Bytes)), gs.Dirs, displayPath(src))
	// Files written less than a second ago are always read again (their
	// ctime could still change within the same clock tick); wait so the
	// second backup shows the steady state.
	time.Sleep(1100 * time.Millisecond)
	opt := a.options(false)
	opt.Repository, opt.CacheDir, opt.NoCache = repoDir, filepath.Join(dir, "cache"), false
	opt.Password = func() ([]byte, error) { return []byte(demoPassword), nil }
	r, err := app.Init(ctx, opt)
	if err != nil {
		return err
	}
	defer r.Close()
	a.printf("created repository %s (password %q)\n", displayPath(repoDir), demoPassword)
	var first blob.ID
	run := func(label string) error {
		t := time.Now()
		res, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true})
		if err != nil {
			return err
		}
		if first.IsNull() {
			first = res.ID
		}
		s := res.Summary
		a.printf("%s: snapshot %s, %s scan, %d new / %d changed / %d unchanged files, read %s, added %s, total %s in %d files, %s\n",
			label, res.ID.Short(), res.Scan.Mode, s.FilesNew, s.FilesChanged, s.FilesUnchanged,
			humanBytes(s.BytesRead), humanBytes(s.BytesAdded), humanBytes(res.Totals.Bytes), res.Totals.Files,
			time.Since(t).Round(time.Millisecond))
		return nil
	}
	if err := run("first backup"); err != nil {
		return err
	}
	changed, err := gentree.Modify(src, 10, 2)
	if err != nil {
		return err
	}
	a.printf("changed %d files\n", len(changed))
	time.Sleep(1100 * time.Millisecond)
	if err := run("second backup"); err != nil {
		return err
	}
	res, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest", Options: restore.Options{Target: target}})
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("restore reported %d errors, first: %s: %s", len(res.Errors), res.Errors[0].Path, res.Errors[0].Err)
	}
	if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
		return fmt.Errorf("restored tree differs from the source: %w", err)
	}
	a.printf("restored %d files (%s) to %s: identical to the source\n", res.Files, humanBytes(res.Bytes), displayPath(target))
	chk, err := r.Check(ctx, check.Options{ReadData: true}, a.report)
	if err != nil {
		return err
	}
	if n := len(chk.Problems); n > 0 {
		return fmt.Errorf("check found %d problems", n)
	}
	a.printf("check --read-data: %d packs, %d blobs verified, no problems\n", chk.Summary.PacksRead, chk.Summary.Blobs)
	if a.jsonOut {
		return a.printJSON(struct {
			OK         bool    `json:"ok"`
			Dir        string  `json:"dir"`
			Kept       bool    `json:"kept"`
			Repository string  `json:"repository"`
			Password   string  `json:"password"`
			Source     string  `json:"source"`
			Files      int     `json:"files"`
			Snapshot   blob.ID `json:"snapshot"`
		}{true, dir, keep, repoDir, demoPassword, src, gs.Files, res.Snapshot})
	}
	if keep {
		a.printDemoTry(dir, repoDir, src, target, first)
	}
	return nil
}

// printDemoTry prints the commands to explore the repository the demo kept.
func (a *cli) printDemoTry(dir, repoDir, src, target string, first blob.ID) {
	a.printf("\nthe demo is kept in %s; try it:\n", displayPath(dir))
	a.printf("  export TIDEMARK_REPOSITORY=%s TIDEMARK_PASSWORD=%s\n", shellQuote(repoDir), shellQuote(demoPassword))
	a.printf("  tidemark snapshots\n")
	a.printf("  tidemark ls latest %s\n", shellQuote(src))
	a.printf("  tidemark diff %s latest\n", first.Short())
	a.printf("  tidemark restore latest --target %s    # again: every file is already there, unchanged\n", shellQuote(target))
	a.printf("  tidemark check --read-data\n")
	a.printf("then remove it: rm -rf %s (or run the demo with --clean)\n", shellQuote(dir))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@%", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
