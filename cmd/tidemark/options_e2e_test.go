//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeaninglessOptionsRefused: options that could only mean a mistake
// fail before anything is done, naming the option and why.
func TestMeaninglessOptionsRefused(t *testing.T) {
	e := newEnv(t)
	e.mustRun("init")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"forget", "--retention", "0D:0s"}, `--retention "0D:0s": timeframe 0D is empty`},
		{[]string{"forget", "--retention", "1D:2D"}, `--retention "1D:2D": interval 2D is longer than its timeframe 1D`},
		{[]string{"prune", "--max-unused", "150%"}, `--max-unused "150%": want a percentage from 0% to 100%`},
		{[]string{"forget", "--keep-last", "1", "--prune", "--max-unused", "150%"}, `--max-unused "150%"`},
	} {
		r := e.run(tc.args...)
		if r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("tidemark %s: exit %d, %s", strings.Join(tc.args, " "), r.code, r.stderr)
		}
	}
}

// TestRepositoryIsAFile: -r naming a file, or a path below one, is "no
// repository here" (exit 10), naming the path.
func TestRepositoryIsAFile(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.dir, "file")
	if err := os.WriteFile(file, []byte("not a repository"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{file, "local:" + file, filepath.Join(file, "repo")} {
		e.repo = loc
		r := e.run("snapshots")
		if r.code != exitNoRepo || !strings.Contains(r.stderr, strings.TrimPrefix(loc, "local:")) || !strings.Contains(r.stderr, "no repository at this location") {
			t.Errorf("-r %s: exit %d, %s", loc, r.code, r.stderr)
		}
	}
}
