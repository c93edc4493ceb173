//go:build linux

package restore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreAgain: restoring into the place of an earlier restore keeps
// every entry that already is as the snapshot has it (counted unchanged,
// its metadata set again), refuses a file whose content differs at the
// same size without Overwrite, and replaces it with Overwrite.
func TestRestoreAgain(t *testing.T) {
	src := buildSource(t)
	r, _ := newRepo(t)
	tree := backup(t, r, src.dir)
	owners := os.Geteuid() == 0
	ctx := context.Background()
	target := filepath.Join(tempDir(t), "target")
	removable(t, target)
	root := filepath.Join(target, src.dir)

	first, err := Run(ctx, r, tree, Options{Target: target, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	checkNoErrors(t, first)
	if first.Unchanged != 0 {
		t.Fatalf("first restore into an empty target: %d unchanged", first.Unchanged)
	}

	// Metadata changed, content not: kept, and its metadata restored.
	must(t, os.Chmod(filepath.Join(root, "small.txt"), 0o600))
	now := time.Now()
	must(t, os.Chtimes(filepath.Join(root, "dir/big.bin"), now, now))
	again, err := Run(ctx, r, tree, Options{Target: target, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	checkNoErrors(t, again)
	if again.Files != 0 || again.Bytes != 0 || again.Other != 0 || again.Unchanged != first.Files+first.Other || again.UnchangedBytes != first.Bytes {
		t.Fatalf("restore again: %+v; first %+v", again, first)
	}
	compareTrees(t, src.dir, root, owners)

	// Same size, different content: not overwritten without Overwrite.
	victim := filepath.Join(root, "dir/sub/deeper/file.txt")
	must(t, os.WriteFile(victim, []byte("DEEP"), 0o644))
	res, err := Run(ctx, r, tree, Options{Target: target, Owners: owners})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || res.Errors[0].Path != victim || !strings.Contains(res.Errors[0].Err, "exists; not overwritten") {
		t.Fatalf("errors %+v, want one for %s", res.Errors, victim)
	}
	if b, _ := os.ReadFile(victim); string(b) != "DEEP" {
		t.Fatalf("the different file was changed to %q", b)
	}
	if res.Unchanged != again.Unchanged-1 || res.Files != 0 {
		t.Fatalf("restore over one different file: %+v", res)
	}

	res, err = Run(ctx, r, tree, Options{Target: target, Owners: owners, Overwrite: OverwriteAlways})
	if err != nil {
		t.Fatal(err)
	}
	checkNoErrors(t, res)
	if res.Files != 1 || res.Bytes != 4 || res.Unchanged != again.Unchanged-1 {
		t.Fatalf("restore with Overwrite: %+v", res)
	}
	compareTrees(t, src.dir, root, owners)
}
