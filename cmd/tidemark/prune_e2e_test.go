//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/gentree"
)

// TestKilledPrunes kills prunes with SIGKILL at random moments while they
// delete and repack, on each backend. After each kill the repository must check clean and
// keep every snapshot; in the end a prune completes, leaves nothing
// unused, and every snapshot restores.
func TestKilledPrunes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	forEachBackend(t, killedPrunes)
}

func killedPrunes(t *testing.T, e *env) {
	src := filepath.Join(e.dir, "src")
	if _, err := gentree.Generate(src, gentree.Spec{Files: 2000, Seed: 4, LargeEvery: 200, LargeSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	rng := rand.New(rand.NewPCG(11, 11))
	// Each round adds a large file and removes the one of four rounds ago,
	// and forgets all but the last three snapshots, so every prune has
	// packs to delete and, with --max-unused 0%, packs to repack.
	round := func(i int) {
		if _, err := gentree.Modify(src, 40, uint64(i)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("big%02d.bin", i)), gentree.RandomBytes(6<<20, rng.Uint64()), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(src, fmt.Sprintf("big%02d.bin", i-4)))
		e.mustRun("backup", "-q", src)
		e.mustRun("forget", "-q", "--keep-last", "3")
	}
	for i := range 4 {
		round(i)
	}
	start := time.Now()
	e.mustRun("prune", "--max-unused", "0%")
	took := time.Since(start)
	t.Logf("an uninterrupted prune takes %v", took)

	const kills = 20
	killed := 0
	for i := 4; killed < kills && i < 4+2*kills; i++ {
		round(i)
		want := len(e.snapshots())
		cmd := e.command("prune", "--max-unused", "0%")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Random moments mostly land before the deleting starts (process
		// start and reading dominate), so two rounds in three aim at the
		// steps that change the repository: right after the first index
		// file is written or removed, and right after the first pack is
		// deleted.
		delay := time.Duration(rng.Int64N(int64(took) + 1))
		kill := time.After(delay)
		switch i % 3 {
		case 1:
			kill = when(done, changed(e, "index", false))
		case 2:
			kill = when(done, changed(e, "data", true))
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("prune failed before being killed: %v\n%s", err, errOut.String())
			}
		case <-kill:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err := <-done
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				killed++
			} else if err != nil {
				t.Fatalf("prune failed: %v\n%s", err, errOut.String())
			}
		}
		// The killed prune's lock is stale (its process is gone).
		if r := e.run("check", "--json"); r.code != 0 {
			t.Fatalf("round %d (killed after %v): check failed: %s %s", i, delay, r.stdout, r.stderr)
		}
		if got := len(e.snapshots()); got != want {
			t.Fatalf("round %d: %d snapshots after the killed prune, want %d", i, got, want)
		}
	}
	if killed < kills {
		t.Fatalf("only %d prunes were killed mid-run", killed)
	}
	var res struct {
		Deleted         int   `json:"deleted"`
		Unindexed       int   `json:"unindexed"`
		RemainingUnused int64 `json:"remaining_unused"`
	}
	out := e.mustRun("--json", "prune", "--max-unused", "0%")
	if err := json.Unmarshal([]byte(out.stdout), &res); err != nil {
		t.Fatalf("prune --json: %v: %s", err, out.stdout)
	}
	if res.RemainingUnused != 0 {
		t.Fatalf("final prune left %d unused bytes", res.RemainingUnused)
	}
	var sum struct {
		Summary struct {
			UnreferencedPacks int `json:"unreferenced_packs"`
		}
	}
	r := e.mustRun("check", "--read-data", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Summary.UnreferencedPacks != 0 {
		t.Fatalf("%d unindexed packs after the final prune", sum.Summary.UnreferencedPacks)
	}
	for _, sn := range e.snapshots() {
		e.mustRun("restore", sn.ID, "--target", filepath.Join(e.dir, "restore-"+sn.ID[:8]))
	}
	latest := filepath.Join(e.dir, "restore-latest")
	e.mustRun("restore", "latest", "--target", latest)
	if err := gentree.Compare(src, filepath.Join(latest, src)); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d prunes killed; the final prune deleted %d packs, %d of them left unindexed by kills", killed, res.Deleted, res.Unindexed)
}

// changed returns a function reporting whether the files under the
// repository's directory dir differ from now; with onlyRemoved, whether
// one of them is gone.
func changed(e *env, dir string, onlyRemoved bool) func() bool {
	list := func() map[string]bool {
		names := map[string]bool{}
		filepath.Walk(filepath.Join(e.store, dir), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && !strings.HasPrefix(fi.Name(), ".") {
				names[p] = true
			}
			return nil
		})
		return names
	}
	before := list()
	return func() bool {
		now := list()
		for n := range before {
			if !now[n] {
				return true
			}
		}
		return !onlyRemoved && len(now) != len(before)
	}
}

// when polls cond until it holds (the returned channel fires) or done has
// a value (it then never fires; the value is put back).
func when(done chan error, cond func() bool) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		for {
			select {
			case err := <-done:
				done <- err
				return
			case <-time.After(time.Millisecond):
			}
			if cond() {
				ch <- time.Now()
				return
			}
		}
	}()
	return ch
}
