//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/gentree"
)

// storedFiles lists the object names under a repository directory.
func (e *env) storedFiles(dir string) []string {
	var out []string
	filepath.Walk(filepath.Join(e.store, dir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestRepairCommands deletes a data pack, then all index files, and runs
// the repair commands through the binary: each says what is lost, and the
// repository checks clean and restores afterwards.
func TestRepairCommands(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 200, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	e.mustRun("backup", src)
	packsBefore := e.storedFiles("data")
	lostFile := filepath.Join(src, "lost.bin")
	if err := os.WriteFile(lostFile, gentree.RandomBytes(2<<20, 9), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	var victim string
	for _, p := range e.storedFiles("data") {
		if !strings.Contains(strings.Join(packsBefore, "\n"), p) {
			victim = p
		}
	}
	if victim == "" {
		t.Fatal("the second backup stored no data pack")
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if r := e.run("check"); r.code == 0 {
		t.Fatalf("check passed with a pack deleted: %s", r.stdout)
	}
	out := e.mustRun("repair", "index").stdout
	rel := strings.TrimPrefix(lostFile, "/")
	for _, want := range []string{"lost: pack " + filepath.Base(victim), rel + ": file left out", "1 of 2 snapshots reference lost data", "tidemark repair snapshots"} {
		if !strings.Contains(out, want) {
			t.Fatalf("repair index output lacks %q:\n%s", want, out)
		}
	}
	out = e.mustRun("repair", "snapshots", "--forget").stdout
	if !strings.Contains(out, rel+": file left out") || !strings.Contains(out, "forgot 1 damaged snapshots") {
		t.Fatalf("repair snapshots output:\n%s", out)
	}
	e.mustRun("check", "--read-data")
	if err := os.Remove(lostFile); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
		t.Fatalf("repaired snapshot: %v", err)
	}

	for _, p := range e.storedFiles("index") {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	out = e.mustRun("repair", "index").stdout
	if !strings.Contains(out, "packs no index named are indexed again") || !strings.Contains(out, "0 of 2 snapshots reference lost data") {
		t.Fatalf("repair index after deleting the index files:\n%s", out)
	}
	e.mustRun("check", "--read-data")
}

// TestCacheRebuild deletes the local cache: cache rebuild recreates it
// from the repository, with this host's history, and the next backup
// scans fully, saying why.
func TestCacheRebuild(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 200, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	e.mustRun("backup", src)
	e.mustRun("backup", src)
	entries, err := os.ReadDir(e.cache)
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache directory: %v %v", entries, err)
	}
	if err := os.RemoveAll(filepath.Join(e.cache, entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("cache", "rebuild").stdout
	if !strings.Contains(out, "2 snapshot records, 2 backups") {
		t.Fatalf("cache rebuild:\n%s", out)
	}
	if hist := e.mustRun("history").stdout; strings.Count(hist, "\n") < 2 {
		t.Fatalf("history after rebuild:\n%s", hist)
	}
	for _, dir := range []string{"state.db", "trees", "index", "snapshots"} {
		if _, err := os.Stat(filepath.Join(e.cache, entries[0].Name(), dir)); err != nil {
			t.Fatalf("rebuilt cache lacks %s: %v", dir, err)
		}
	}
	e.mustRun("backup", src)
	sns := e.snapshots()
	last := sns[len(sns)-1]
	if last.Scan.Mode != "full" || !strings.Contains(last.Scan.Reason, "cache was rebuilt") {
		t.Fatalf("backup after cache rebuild: mode %q, reason %q", last.Scan.Mode, last.Scan.Reason)
	}
	e.mustRun("check")
}
