//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/app"
)

// TestForget: --dry-run shows the verdicts and reasons and removes
// nothing; the real run removes exactly the snapshots not kept, the
// repository still checks, and backups go on from the kept parent.
func TestForget(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	for i := range 5 {
		os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("x", i+1)), 0o644)
		args := []string{"backup", src}
		if i == 1 {
			args = append(args, "--tag", "release")
		}
		e.mustRun(args...)
	}
	if r := e.run("forget"); r.code != 1 || !strings.Contains(r.stderr, "no policy") {
		t.Fatalf("forget without a policy: exit %d %s", r.code, r.stderr)
	}
	dry := e.mustRun("forget", "--keep-last", "2", "--keep-tag", "release", "--dry-run")
	if strings.Count(dry.stdout, "would forget") != 2 || !strings.Contains(dry.stdout, "last 2") || !strings.Contains(dry.stdout, "tag release") {
		t.Fatalf("dry run:\n%s", dry.stdout)
	}
	if n := len(e.snapshots()); n != 5 {
		t.Fatalf("dry run removed snapshots: %d left", n)
	}
	out := e.mustRun("forget", "--keep-last", "2", "--keep-tag", "release", "--json")
	var res []app.ForgetVerdict
	if err := json.Unmarshal([]byte(out.stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, out.stdout)
	}
	removed := 0
	for _, f := range res {
		if f.Removed != !f.Keep {
			t.Fatalf("inconsistent verdict %+v", f)
		}
		if f.Removed {
			removed++
		}
	}
	if removed != 2 || len(e.snapshots()) != 3 {
		t.Fatalf("removed %d, %d snapshots left", removed, len(e.snapshots()))
	}
	e.mustRun("check")
	os.WriteFile(filepath.Join(src, "g"), []byte("new"), 0o644)
	e.mustRun("backup", src)
	sns := e.snapshots()
	if len(sns) != 4 || sns[3].Scan.Mode == "full" {
		t.Fatalf("backup after forget: %+v", sns[len(sns)-1].Scan)
	}
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))
	if r := e.run("forget", "--keep-last", "1", "--group-by", "colour"); r.code != 1 || !strings.Contains(r.stderr, "colour") {
		t.Fatalf("bad --group-by: exit %d %s", r.code, r.stderr)
	}

	// forget --prune: one JSON document with both results; the forgotten
	// snapshots' data is gone and the rest still restores.
	out = e.mustRun("--json", "forget", "--keep-last", "1", "--prune", "--max-unused", "0%")
	var both struct {
		Forget []app.ForgetVerdict
		Prune  struct {
			Deleted         int   `json:"deleted"`
			RemainingUnused int64 `json:"remaining_unused"`
		}
	}
	if err := json.Unmarshal([]byte(out.stdout), &both); err != nil {
		t.Fatalf("forget --prune --json: %v: %s", err, out.stdout)
	}
	if len(both.Forget) != 4 || both.Prune.Deleted == 0 || both.Prune.RemainingUnused != 0 {
		t.Fatalf("forget --prune: %+v", both)
	}
	e.mustRun("check", "--read-data")
	target = filepath.Join(e.dir, "restore-after-prune")
	e.mustRun("restore", "latest", "--target", target)
	compareTrees(t, src, filepath.Join(target, src))
}
