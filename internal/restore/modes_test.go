//go:build linux

package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// modesSource is a small tree whose files all have the mtime t0.
func modesSource(t *testing.T, t0 time.Time) string {
	src := filepath.Join(tempDir(t), "src")
	for name, data := range map[string]string{
		"same.txt": "same", "diff.txt": "snap", "newer.txt": "snap", "meta.txt": "snap", "link": "snap", "new.txt": "new",
		"d/inner.txt": "inner", "hl/a": "linked", "notdir/x": "x",
	} {
		writeFile(t, filepath.Join(src, name), []byte(data))
	}
	must(t, os.Link(filepath.Join(src, "hl/a"), filepath.Join(src, "hl/b")))
	must(t, os.Symlink("same.txt", filepath.Join(src, "sym")))
	must(t, filepath.Walk(src, func(p string, _ os.FileInfo, err error) error {
		must(t, err)
		return os.Chtimes(p, t0, t0)
	}))
	return src
}

// modesTarget puts in root what a user may have there: an identical
// file, files that differ (older, newer, with the snapshot's mtime), a
// symlink where a file was, a file where a directory was, and the
// hard-linked pair already restored.
func modesTarget(t *testing.T, root string, t0 time.Time) {
	put := func(name, data string, mtime time.Time) {
		writeFile(t, filepath.Join(root, name), []byte(data))
		must(t, os.Chtimes(filepath.Join(root, name), mtime, mtime))
	}
	put("same.txt", "same", t0.Add(-time.Hour))
	put("diff.txt", "DIFF", t0.Add(-time.Hour))
	put("newer.txt", "NEWR", t0.Add(time.Hour))
	put("meta.txt", "META", t0)
	must(t, os.Symlink("/nonexistent", filepath.Join(root, "link")))
	put("notdir", "a file", t0.Add(-time.Hour))
	put("hl/a", "linked", t0)
	must(t, os.Link(filepath.Join(root, "hl/a"), filepath.Join(root, "hl/b")))
}

// state records every entry below root: type, size, mtime and a content
// hash, to tell whether anything changed.
func state(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	if _, err := os.Lstat(root); errors.Is(err, os.ErrNotExist) {
		return out
	}
	must(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		must(t, err)
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			must(t, err)
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[p] = desc
		return nil
	}))
	return out
}

func TestOverwriteModes(t *testing.T) {
	t0 := time.Unix(1_600_000_000, 0)
	src := modesSource(t, t0)
	r, _ := newRepo(t)
	tree := backup(t, r, src)
	ctx := context.Background()

	const (
		rest = Restored
		repl = Replaced
		keep = Kept
		skip = Skipped
		fail = Action(0) // an error
	)
	for _, tc := range []struct {
		mode Overwrite
		want map[string]Action
	}{
		{OverwriteRefuse, map[string]Action{"same.txt": keep, "diff.txt": fail, "newer.txt": fail, "meta.txt": fail, "link": fail, "new.txt": rest,
			"notdir": fail, "hl/a": keep, "hl/b": keep, "sym": rest}},
		{OverwriteAlways, map[string]Action{"same.txt": keep, "diff.txt": repl, "newer.txt": repl, "meta.txt": repl, "link": repl, "new.txt": rest,
			"notdir": repl, "notdir/x": rest, "d": rest, "d/inner.txt": rest, "hl/a": keep, "hl/b": keep, "sym": rest}},
		{OverwriteIfChanged, map[string]Action{"same.txt": keep, "diff.txt": repl, "newer.txt": repl, "meta.txt": keep, "link": repl, "new.txt": rest,
			"notdir": repl, "notdir/x": rest, "d": rest, "d/inner.txt": rest, "hl/a": keep, "hl/b": keep, "sym": rest}},
		// The symlink was made now, after t0: newer than the snapshot's file.
		{OverwriteIfNewer, map[string]Action{"same.txt": keep, "diff.txt": repl, "newer.txt": skip, "meta.txt": skip, "link": skip, "new.txt": rest,
			"notdir": repl, "notdir/x": rest, "d": rest, "d/inner.txt": rest, "hl/a": skip, "hl/b": skip, "sym": rest}},
		{OverwriteNever, map[string]Action{"same.txt": skip, "diff.txt": skip, "newer.txt": skip, "meta.txt": skip, "link": skip, "new.txt": rest,
			"notdir": skip, "d": rest, "d/inner.txt": rest, "hl/a": skip, "hl/b": skip, "sym": rest}},
	} {
		name := tc.mode.String()
		if name == "" {
			name = "refuse"
		}
		t.Run(name, func(t *testing.T) {
			// The directories above the source root are created or merged
			// and not reported; "d" is new in every mode.
			if tc.mode == OverwriteRefuse {
				tc.want["d"], tc.want["d/inner.txt"] = rest, rest
			}
			var lastTarget string
			for _, dry := range []bool{true, false} {
				target := filepath.Join(tempDir(t), "target")
				lastTarget = target
				root := filepath.Join(target, src)
				modesTarget(t, root, t0)
				before := state(t, target)
				got := map[string]Action{}
				var mu sync.Mutex
				res, err := Run(ctx, r, tree, Options{Target: target, Overwrite: tc.mode, DryRun: dry, Report: func(e Entry) {
					if rel, ok := strings.CutPrefix(e.Path, root+"/"); ok {
						mu.Lock()
						got[rel] = e.Action
						mu.Unlock()
					}
				}})
				must(t, err)
				for _, e := range res.Errors {
					rel := strings.TrimPrefix(e.Path, root+"/")
					if _, dup := got[rel]; dup {
						t.Errorf("%s both reported (%v) and failed: %s", rel, got[rel], e.Err)
					}
					got[rel] = fail
				}
				if !maps.Equal(got, tc.want) {
					t.Errorf("dry %v:\n got %v\nwant %v", dry, got, tc.want)
				}
				var skipped uint64
				for _, a := range got {
					if a == skip {
						skipped++
					}
				}
				if res.Skipped != skipped {
					t.Errorf("dry %v: Skipped %d, want %d", dry, res.Skipped, skipped)
				}
				if after := state(t, target); dry && !maps.Equal(before, after) {
					t.Errorf("the dry run changed the target")
				}
			}
			// What the restore left is what the actions say.
			src0 := map[string]string{"same.txt": "same", "diff.txt": "snap", "newer.txt": "snap", "meta.txt": "snap", "link": "snap", "new.txt": "new"}
			pre := map[string]string{"same.txt": "same", "diff.txt": "DIFF", "newer.txt": "NEWR", "meta.txt": "META"}
			root := filepath.Join(lastTarget, src)
			for name, want := range src0 {
				b, _ := os.ReadFile(filepath.Join(root, name))
				switch a := tc.want[name]; {
				case a == rest || a == repl:
					if string(b) != want {
						t.Errorf("%s (%v) holds %q, want %q", name, a, b, want)
					}
				case pre[name] != "" && string(b) != pre[name]:
					t.Errorf("%s (%v) holds %q, want it left as %q", name, a, b, pre[name])
				}
			}
			if tc.want["link"] != repl {
				if target, err := os.Readlink(filepath.Join(root, "link")); err != nil || target != "/nonexistent" {
					t.Errorf("the symlink left alone is now %q (%v)", target, err)
				}
			}
			a, errA := os.Stat(filepath.Join(root, "hl/a"))
			b, errB := os.Stat(filepath.Join(root, "hl/b"))
			if errA != nil || errB != nil || !os.SameFile(a, b) {
				t.Errorf("hl/a and hl/b are not one file: %v %v", errA, errB)
			}
		})
	}
}

func TestRestoreVerify(t *testing.T) {
	t0 := time.Unix(1_600_000_000, 0)
	src := modesSource(t, t0)
	r, _ := newRepo(t)
	tree := backup(t, r, src)
	ctx := context.Background()

	// Into an empty target: every file written is read back; the second
	// name of the hard-linked pair is the same file and is not.
	target := filepath.Join(tempDir(t), "target")
	res, err := Run(ctx, r, tree, Options{Target: target, Verify: true})
	must(t, err)
	checkNoErrors(t, res)
	if res.Files != 10 || res.Verified != 9 || len(res.Mismatches) != 0 || res.VerifiedBytes != res.Bytes-uint64(len("linked")) {
		t.Fatalf("verify into an empty target: %+v", res)
	}

	// if-changed takes meta.txt (other content, the snapshot's size and
	// mtime) as unchanged; verification finds it differs.
	target = filepath.Join(tempDir(t), "target")
	root := filepath.Join(target, src)
	modesTarget(t, root, t0)
	res, err = Run(ctx, r, tree, Options{Target: target, Overwrite: OverwriteIfChanged, Verify: true})
	must(t, err)
	checkNoErrors(t, res)
	if len(res.Mismatches) != 1 || res.Mismatches[0].Path != filepath.Join(root, "meta.txt") || !strings.Contains(res.Mismatches[0].Err, "differs from the snapshot") {
		t.Fatalf("mismatches %+v, want meta.txt", res.Mismatches)
	}
	// Kept by comparing (same.txt, hl/a), or rewritten and read back.
	if res.Verified != res.Files+2 {
		t.Errorf("verified %d of %d files written and 2 compared: %+v", res.Verified, res.Files, res)
	}
	// Without Verify nothing is read back or listed.
	res, err = Run(ctx, r, tree, Options{Target: target, Overwrite: OverwriteIfChanged})
	must(t, err)
	if len(res.Mismatches) != 0 {
		t.Errorf("mismatches without Verify: %+v", res.Mismatches)
	}
}

func TestRestoreSubpath(t *testing.T) {
	t0 := time.Unix(1_600_000_000, 0)
	src := modesSource(t, t0)
	r, _ := newRepo(t)
	tree := backup(t, r, src)
	ctx := context.Background()
	sp := snapPath(src)

	for _, tc := range []struct {
		name, sub string
		include   []string
		want      []string
		absent    []string
		wantErr   string
	}{
		{name: "directory", sub: sp + "/d", want: []string{"inner.txt"}},
		{name: "leading slash", sub: "/" + sp + "/d/", want: []string{"inner.txt"}},
		{name: "hard links inside", sub: sp + "/hl", want: []string{"a", "b"}},
		{name: "include relative to it", sub: sp, include: []string{"/d"}, want: []string{"d/inner.txt"}, absent: []string{"same.txt", "hl"}},
		{name: "a file", sub: sp + "/same.txt", wantErr: "it is a file, not a directory"},
		{name: "missing", sub: sp + "/nope", wantErr: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(tempDir(t), "target")
			res, err := Run(ctx, r, tree, Options{Target: target, Subpath: tc.sub, Include: tc.include})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("target created: %v", err)
				}
				return
			}
			must(t, err)
			checkNoErrors(t, res)
			for _, p := range tc.want {
				if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
					t.Errorf("%s not restored: %v", p, err)
				}
			}
			for _, p := range tc.absent {
				if _, err := os.Lstat(filepath.Join(target, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s restored: %v", p, err)
				}
			}
			if tc.name == "hard links inside" {
				a, _ := os.Stat(filepath.Join(target, "a"))
				b, _ := os.Stat(filepath.Join(target, "b"))
				if a == nil || b == nil || !os.SameFile(a, b) {
					t.Error("a and b are not hard-linked")
				}
			}
		})
	}
}

// TestDryRunNewTarget: a dry run into a target that does not exist says
// what the restore then does, and creates nothing.
func TestDryRunNewTarget(t *testing.T) {
	src := buildSource(t)
	r, _ := newRepo(t)
	tree := backup(t, r, src.dir)
	ctx := context.Background()
	target := filepath.Join(tempDir(t), "target")
	removable(t, target)

	var n int
	var mu sync.Mutex
	count := func(Entry) { mu.Lock(); n++; mu.Unlock() }
	dry, err := Run(ctx, r, tree, Options{Target: target, DryRun: true, Report: count, Include: []string{"*.txt", "/" + snapPath(src.dir) + "/hl"}})
	must(t, err)
	checkNoErrors(t, dry)
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dry run created the target: %v", err)
	}
	dryReports := n
	n = 0
	real, err := Run(ctx, r, tree, Options{Target: target, Owners: os.Geteuid() == 0, Report: count, Include: []string{"*.txt", "/" + snapPath(src.dir) + "/hl"}})
	must(t, err)
	checkNoErrors(t, real)
	if !reflect.DeepEqual(dry, real) || dryReports != n || real.Files == 0 {
		t.Fatalf("dry run %+v (%d entries), restore %+v (%d entries)", dry, dryReports, real, n)
	}
}
