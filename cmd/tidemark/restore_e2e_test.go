//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRestoreSelect: --include and --exclude with globs, relative and
// anchored patterns, and SNAPSHOT:DIR, on a tree with odd names, hard
// links, symlinks and a sparse file.
func TestRestoreSelect(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	oddTree(t, src)
	e.mustRun("init")
	e.mustRun("backup", src)
	want := readTree(t, src)

	// restored checks that root holds exactly the entries of names (and
	// the directories leading to them), as the source has them.
	restored := func(root string, names ...string) {
		t.Helper()
		got := readTree(t, root)
		expect := map[string]bool{}
		for _, n := range names {
			expect[n] = true
			for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
				expect[d] = true
			}
		}
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(expect))) {
			t.Errorf("%s holds %q, want %q", root, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(expect)))
		}
		for _, n := range names {
			g, w := got[n], want[n]
			if !bytes.Equal(g.content, w.content) || g.target != w.target || g.st.Mode != w.st.Mode || g.st.Mtim != w.st.Mtim {
				t.Errorf("%q differs: %o %v vs %o %v", n, g.st.Mode, g.st.Mtim, w.st.Mode, w.st.Mtim)
			}
		}
	}
	links := func(root string, names ...string) {
		t.Helper()
		var ino uint64
		for i, n := range names {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, n), &st); err != nil {
				t.Fatal(err)
			}
			if i > 0 && st.Ino != ino {
				t.Errorf("%s is not hard-linked to %s", n, names[0])
			}
			ino = st.Ino
		}
	}

	dir := func(name string) string { return filepath.Join(e.dir, name) }
	// Globs on names at any depth, a relative path, from SNAPSHOT:DIR.
	r := e.mustRun("restore", "latest:"+src, "--target", dir("t1"), "--include", "*.odt", "--include", "links")
	restored(dir("t1"), "docs/report.odt", "docs/old/report.odt", "links/a", "links/b", "links/sym")
	// docs/c-link, the first name of the links' file, is not restored:
	// the first of the others holds the content.
	links(dir("t1"), "links/a", "links/b")
	if !strings.Contains(r.stdout, "restored 4 files") || !strings.Contains(r.stdout, "from "+src+" of snapshot") {
		t.Errorf("restore output: %s", r.stdout)
	}

	// Excludes: an anchored directory, a glob, an odd name.
	e.mustRun("restore", "latest:"+src, "--target", dir("t2"), "--exclude", "/bin", "--exclude", "*.img", "--exclude", "esc*")
	var all []string
	for n := range want {
		if !strings.HasPrefix(n, "bin") && n != "sparse.img" && !strings.HasPrefix(n, "esc") {
			all = append(all, n)
		}
	}
	restored(dir("t2"), all...)
	links(dir("t2"), "docs/c-link", "links/a", "links/b")

	// The whole snapshot below its absolute path, a "**" pattern, and a
	// path with the end of its directories given.
	e.mustRun("restore", "latest", "--target", dir("t3"), "--include", src+"/**/old/*", "--include", "links/sym", "--include", "bad\xff*")
	restored(filepath.Join(dir("t3"), src), "docs/old/report.odt", "links/sym", "bad\xff\xfe.txt")
	// The sparse file stays sparse: chunks of zeros become holes (the
	// chunks holding its two ends, up to 8 MiB each, are written).
	e.mustRun("restore", "latest:"+src, "--target", dir("t4"), "--include", "/sparse.img")
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir("t4"), "sparse.img"), &st); err != nil || st.Size != 48<<20 || st.Blocks*512 > 17<<20 {
		t.Errorf("sparse.img restored with %d blocks (%v)", st.Blocks, err)
	}

	// A pattern that matches nothing is a warning; a missing anchored
	// path an error, before anything is written.
	r = e.mustRun("restore", "latest", "--target", dir("t5"), "--include", "*.pdf")
	if !strings.Contains(r.stderr, "warning: --include *.pdf matched nothing in the snapshot") || !strings.Contains(r.stdout, "restored 0 files") {
		t.Errorf("unmatched include: %q %q", r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"latest", "--include", src + "/nope"}, `--include "` + src + `/nope": path`},
		{[]string{"latest", "--exclude", "[x"}, `--exclude: pattern "[x": malformed`},
		{[]string{"latest", "--include", "a/../b"}, `".." is not allowed`},
		{[]string{"latest:" + src + "/empty"}, "it is a file, not a directory"},
		{[]string{"latest:" + src + "/nope"}, "not found in snapshot"},
	} {
		target := dir("failed")
		r := e.run(append(append([]string{"restore"}, tc.args...), "--target", target)...)
		if r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("restore %q: exit %d, %s; want %q", tc.args, r.code, r.stderr, tc.want)
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restore %q created the target", tc.args)
		}
	}
}

// TestRestoreOverwrite: --overwrite's modes (restic's spellings, and the
// boolean it was), --dry-run saying what a restore then does and writing
// nothing, and --verify.
func TestRestoreOverwrite(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	files := map[string]string{"older.txt": "snap", "newer.txt": "snap", "same.txt": "same", "new.txt": "new"}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, t0, t0); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun("init")
	e.mustRun("backup", src)

	target := filepath.Join(e.dir, "target")
	root := filepath.Join(target, src)
	// prepare puts the target in a known state: same.txt as in the
	// snapshot, older.txt changed before it, newer.txt after it.
	prepare := func() {
		t.Helper()
		if err := os.RemoveAll(target); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"older.txt": "OLDR", "newer.txt": "NEWR", "same.txt": "same"} {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			mt := t0.Add(-time.Hour)
			if name == "newer.txt" {
				mt = t0.Add(time.Hour)
			}
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
		}
	}
	content := func() map[string]string {
		out := map[string]string{}
		for name := range files {
			b, _ := os.ReadFile(filepath.Join(root, name))
			out[name] = string(b)
		}
		return out
	}
	type actions map[string]string
	for _, tc := range []struct {
		flags   []string
		code    int
		actions actions
		after   map[string]string
	}{
		{nil, exitFailure, actions{"same.txt": "keep", "new.txt": "restore"},
			map[string]string{"older.txt": "OLDR", "newer.txt": "NEWR", "same.txt": "same", "new.txt": "new"}},
		{[]string{"--overwrite"}, 0, actions{"same.txt": "keep", "new.txt": "restore", "older.txt": "replace", "newer.txt": "replace"},
			map[string]string{"older.txt": "snap", "newer.txt": "snap", "same.txt": "same", "new.txt": "new"}},
		{[]string{"--overwrite=true"}, 0, actions{"same.txt": "keep", "new.txt": "restore", "older.txt": "replace", "newer.txt": "replace"},
			map[string]string{"older.txt": "snap", "newer.txt": "snap", "same.txt": "same", "new.txt": "new"}},
		{[]string{"--overwrite", "if-newer"}, 0, actions{"same.txt": "keep", "new.txt": "restore", "older.txt": "replace", "newer.txt": "skip"},
			map[string]string{"older.txt": "snap", "newer.txt": "NEWR", "same.txt": "same", "new.txt": "new"}},
		{[]string{"--overwrite=never"}, 0, actions{"same.txt": "skip", "new.txt": "restore", "older.txt": "skip", "newer.txt": "skip"},
			map[string]string{"older.txt": "OLDR", "newer.txt": "NEWR", "same.txt": "same", "new.txt": "new"}},
		{[]string{"--overwrite", "if-changed"}, 0, actions{"same.txt": "keep", "new.txt": "restore", "older.txt": "replace", "newer.txt": "replace"},
			map[string]string{"older.txt": "snap", "newer.txt": "snap", "same.txt": "same", "new.txt": "new"}},
	} {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			// The dry run: what it lists, and no change.
			prepare()
			before := content()
			var dry struct {
				DryRun  bool `json:"dry_run"`
				Entries []struct{ Path, Action string }
			}
			r := e.run(append([]string{"restore", "latest", "--target", target, "--dry-run", "--json"}, tc.flags...)...)
			if r.code != tc.code {
				t.Fatalf("dry run: exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
			if err := json.Unmarshal([]byte(r.stdout), &dry); err != nil || !dry.DryRun {
				t.Fatalf("dry run --json: %v %s", err, r.stdout)
			}
			got := actions{}
			for _, en := range dry.Entries {
				if rel, ok := strings.CutPrefix(en.Path, root+"/"); ok {
					got[rel] = en.Action
				}
			}
			if !maps.Equal(got, tc.actions) {
				t.Errorf("dry run: %v, want %v", got, tc.actions)
			}
			if after := content(); !maps.Equal(after, before) {
				t.Errorf("the dry run changed the target: %v", after)
			}
			// The restore does what the dry run said.
			r = e.run(append([]string{"restore", "latest", "--target", target}, tc.flags...)...)
			if r.code != tc.code {
				t.Fatalf("restore: exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
			if got := content(); !maps.Equal(got, tc.after) {
				t.Errorf("after the restore: %v, want %v", got, tc.after)
			}
			if tc.code == exitFailure && !strings.Contains(r.stderr, "older.txt: exists; not overwritten (use --overwrite)") {
				t.Errorf("restore without --overwrite: %s", r.stderr)
			}
		})
	}

	// Text of a dry run, and the argument forms that are refused.
	prepare()
	r := e.mustRun("restore", "latest", "--target", target, "--overwrite", "if-newer", "--dry-run")
	for _, want := range []string{"would replace " + root + "/older.txt (4 B)", "would skip    " + root + "/newer.txt",
		"would keep    " + root + "/same.txt", "would restore " + root + "/new.txt", "1 existing entries would be left alone (--overwrite if-newer)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run text lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--overwrite=sometimes"}, `--overwrite "sometimes": want always, if-changed, if-newer or never`},
		{[]string{"--overwrite", "sometimes"}, `restore: too many arguments ("sometimes")`},
		{[]string{"extra"}, `restore: too many arguments ("extra")`},
	} {
		if r := e.run(append([]string{"restore", "latest", "--target", target}, tc.args...)...); r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, %s; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// --verify reads back what was written and kept; a file if-changed
	// takes as unchanged (same size and mtime) but is not, it finds.
	prepare()
	r = e.mustRun("restore", "latest", "--target", target, "--overwrite", "--verify")
	if !strings.Contains(r.stdout, "verified 4 files (15 B): 0 differ from the snapshot") {
		t.Errorf("restore --verify: %s", r.stdout)
	}
	p := filepath.Join(root, "older.txt")
	if err := os.WriteFile(p, []byte("XXXX"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, t0, t0); err != nil {
		t.Fatal(err)
	}
	r = e.run("restore", "latest", "--target", target, "--overwrite", "if-changed", "--verify")
	if r.code != exitFailure || !strings.Contains(r.stderr, "mismatch: "+p+": verify: the content read back differs from the snapshot's") ||
		!strings.Contains(r.stderr, "restore --verify: 1 files differ from the snapshot") {
		t.Errorf("verify a file if-changed kept: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Restoring again over what is identical stays no error.
	e.mustRun("restore", "latest", "--target", target, "--overwrite")
	if r := e.mustRun("restore", "latest", "--target", target); !strings.Contains(r.stdout, "4 entries (15 B) were already there unchanged and kept") {
		t.Errorf("restore again: %s", r.stdout)
	}
}
