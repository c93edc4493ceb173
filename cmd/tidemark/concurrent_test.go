package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tidemark/tidemark/internal/gentree"
)

// TestConcurrentClients: four hosts, each with its own cache, back up
// different trees into one S3 repository at the same time, twice (the
// second round after changes, so each host also reads the others' index
// files). Every snapshot must restore exactly and the repository must
// pass check --read-data.
func TestConcurrentClients(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	e := newEnv(t)
	e.useBackend("s3")
	e.mustRun("init")
	const hosts = 4
	srcs := make([]string, hosts)
	for i := range srcs {
		srcs[i] = filepath.Join(e.dir, fmt.Sprintf("host%d", i))
		// Shared seed for half the files: the hosts store some identical
		// chunks at the same moment.
		if _, err := gentree.Generate(srcs[i], gentree.Spec{Files: 400, Seed: uint64(1 + i%2), LargeEvery: 50, LargeSize: 2 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		if round > 0 {
			for i, src := range srcs {
				if _, err := gentree.Modify(src, 40, uint64(10*round+i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		var wg sync.WaitGroup
		errs := make([]string, hosts)
		for i, src := range srcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := e.command("backup", "--host", fmt.Sprintf("host%d", i), "--cache-dir", filepath.Join(e.dir, fmt.Sprintf("cache%d", i)), src)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					errs[i] = fmt.Sprintf("host%d: %v\n%s", i, err, out.String())
				}
			}()
		}
		wg.Wait()
		for _, msg := range errs {
			if msg != "" {
				t.Fatal(msg)
			}
		}
		// Each host's latest snapshot is its tree as it is now.
		for i, src := range srcs {
			target := filepath.Join(e.dir, fmt.Sprintf("restore%d-%d", round, i))
			sns := e.snapshots()
			var id string
			for _, sn := range sns {
				if sn.Host == fmt.Sprintf("host%d", i) {
					id = sn.ID // listed oldest first
				}
			}
			if id == "" {
				t.Fatalf("no snapshot of host%d in %+v", i, sns)
			}
			e.mustRun("restore", id, "--target", target)
			if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
				t.Fatalf("round %d host%d: %v", round, i, err)
			}
		}
	}
	if n := len(e.snapshots()); n != 2*hosts {
		t.Fatalf("%d snapshots, want %d", n, 2*hosts)
	}
	e.mustRun("check", "--read-data")
}
