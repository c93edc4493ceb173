//go:build linux

package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// hardLinkBench adds the row "journal backup, N changed hard-linked
// files": it gives n files spread over src a second name in one directory
// of their own (src/hardlinks), lets a journal backup record them, then
// appends to each through its first name and times the journal backup
// that follows. That backup lists, for each changed file, the directory
// of the other name too (the state database's hard-link records), so it
// costs what a journal backup of the same changes without links costs,
// plus one directory. backup and add are journalBench's.
//
// journalBench calls it after its other journal rows:
//
//	if err := hardLinkBench(ctx, src, 100, backup, add); err != nil {
//		return err
//	}
func hardLinkBench(ctx context.Context, src string, n int, backup func(extra ...string) (measure, error), add func(string, measure)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hard-link bench: %w", err)
	}
	if len(files) < n {
		return fmt.Errorf("hard-link bench: %d files, want %d", len(files), n)
	}
	// Every k-th file, so the links join many directories.
	sort.Strings(files)
	step := len(files) / n
	links := filepath.Join(src, "hardlinks")
	if err := os.MkdirAll(links, 0o755); err != nil {
		return fmt.Errorf("hard-link bench: %w", err)
	}
	var chosen []string
	for i := 0; i < n; i++ {
		f := files[i*step]
		if err := os.Link(f, filepath.Join(links, fmt.Sprintf("l%06d", i))); err != nil {
			return fmt.Errorf("hard-link bench: %w", err)
		}
		chosen = append(chosen, f)
	}
	// The links' own backup: it records which directories hold them.
	if _, err := backup("--scan", "journal"); err != nil {
		return err
	}
	for _, f := range chosen {
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("hard-link bench: %w", err)
		}
		_, err = fh.WriteString("changed through its first name\n")
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("hard-link bench: %w", err)
		}
	}
	m, err := backup("--scan", "journal")
	if err != nil {
		return err
	}
	add(fmt.Sprintf("tidemark journal backup, %d changed hard-linked", n), m)
	return nil
}
