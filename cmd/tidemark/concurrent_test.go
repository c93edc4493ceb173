//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidemark/tidemark/internal/gentree"
)

// TestConcurrentClients: four hosts, each with its own cache, back up
// different trees into one S3 repository at the same time, twice (the
// second round after changes, so each host also reads the others' index
// files). Then, three times, old snapshots are forgotten and one host
// prunes while two others back up; one of them backs up a tree whose data
// only forgotten snapshots used, which the prune is about to delete. Every
// snapshot must restore exactly and the repository must pass check
// --read-data each time.
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
	orig1 := filepath.Join(e.dir, "host1-orig")
	if out, err := exec.Command("cp", "-a", srcs[1], orig1).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v: %s", err, out)
	}
	for round := range 2 {
		if round > 0 {
			for i, src := range srcs {
				if _, err := gentree.Modify(src, 40, uint64(10*round+i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		var jobs [][]string
		for i, src := range srcs {
			jobs = append(jobs, []string{"backup", "--host", fmt.Sprintf("host%d", i), "--cache-dir", filepath.Join(e.dir, fmt.Sprintf("cache%d", i)), src})
		}
		e.runAtOnce(jobs)
		// Each host's latest snapshot is its tree as it is now.
		for i, src := range srcs {
			e.restoreLatest(fmt.Sprintf("host%d", i), src)
		}
	}
	if n := len(e.snapshots()); n != 2*hosts {
		t.Fatalf("%d snapshots, want %d", n, 2*hosts)
	}
	e.mustRun("check", "--read-data")

	for it := range 3 {
		// host1 alternates between its first tree and its current one: with
		// only each host's latest snapshot kept, the tree it backs up next
		// is data no remaining snapshot uses.
		src1 := orig1
		if it%2 == 1 {
			src1 = srcs[1]
		}
		if _, err := gentree.Modify(srcs[2], 40, uint64(100+it)); err != nil {
			t.Fatal(err)
		}
		e.mustRun("forget", "--keep-last", "1", "--group-by", "host")
		outs := e.runAtOnce([][]string{
			{"prune", "--max-unused", "0%", "--poll", "100ms", "--cache-dir", filepath.Join(e.dir, "cache0")},
			{"backup", "--host", "host1", "--cache-dir", filepath.Join(e.dir, "cache1"), src1},
			{"backup", "--host", "host2", "--cache-dir", filepath.Join(e.dir, "cache2"), srcs[2]},
		})
		t.Logf("prune while two hosts back up:\n%s", outs[0])
		e.mustRun("check", "--read-data")
		e.restoreLatest("host1", src1)
		e.restoreLatest("host2", srcs[2])
	}
	for _, sn := range e.snapshots() {
		e.mustRun("restore", sn.ID, "--target", filepath.Join(e.dir, "all", sn.ID))
	}
}

// runAtOnce runs tidemark commands at the same time and fails the test if
// one fails. It returns their output.
func (e *env) runAtOnce(jobs [][]string) []string {
	e.t.Helper()
	var wg sync.WaitGroup
	errs, outs := make([]string, len(jobs)), make([]string, len(jobs))
	for i, args := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := e.command(args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			outs[i] = out.String()
			if err != nil {
				errs[i] = fmt.Sprintf("%s: %v\n%s", strings.Join(args, " "), err, out.String())
			}
		}()
	}
	wg.Wait()
	for _, msg := range errs {
		if msg != "" {
			e.t.Fatal(msg)
		}
	}
	return outs
}

// restoreLatest restores host's latest snapshot and compares it with src.
func (e *env) restoreLatest(host, src string) {
	e.t.Helper()
	var id string
	for _, sn := range e.snapshots() {
		if sn.Host == host {
			id = sn.ID // listed oldest first
		}
	}
	if id == "" {
		e.t.Fatalf("no snapshot of %s", host)
	}
	target := filepath.Join(e.dir, "restore-"+id)
	e.mustRun("restore", id, "--target", target)
	if err := gentree.Compare(src, filepath.Join(target, src)); err != nil {
		e.t.Fatalf("%s, snapshot %s: %v", host, id[:8], err)
	}
}
