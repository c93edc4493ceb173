//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// findJSON is one snapshot's group in find --json.
type findJSON struct {
	Snapshot string
	Host     string
	Paths    []string
	Hits     int
	Matches  []struct {
		Path, Type, Target string
		PathBytes          []byte `json:"path_bytes"`
		Size               uint64
		MTime              time.Time
	}
}

func (e *env) findJSON(args ...string) []findJSON {
	e.t.Helper()
	var groups []findJSON
	r := e.mustRun(append([]string{"find", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil {
		e.t.Fatalf("find --json %v: %v\n%s", args, err, r.stdout)
	}
	return groups
}

// paths lists the matches of each group, by snapshot ID prefix.
func groupPaths(groups []findJSON) map[string][]string {
	out := map[string][]string{}
	for _, g := range groups {
		for _, m := range g.Matches {
			p := m.Path
			if m.PathBytes != nil {
				p = string(m.PathBytes)
			}
			out[g.Snapshot[:8]] = append(out[g.Snapshot[:8]], p)
		}
		if g.Hits != len(g.Matches) {
			out[g.Snapshot[:8]] = append(out[g.Snapshot[:8]], "hits disagree")
		}
	}
	return out
}

// TestFind: find across three snapshots of two backup sets, with names
// and globs, case, times, snapshot choice and filters; every match is
// listed under each snapshot holding it, names are exact in --json and
// escaped in text; the trees come from the local cache.
func TestFind(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	other := filepath.Join(e.dir, "other")
	oddTree(t, src)
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "Report.ODT"), []byte("elsewhere"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	s1, _ := e.backupIDs(src)
	if err := os.WriteFile(filepath.Join(src, "docs/new.odt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, _ := e.backupIDs(src)
	s3, _ := e.backupIDs("--host", "elsewhere", "--tag", "t", other)
	s1, s2, s3 = s1[:8], s2[:8], s3[:8]

	for _, tc := range []struct {
		args []string
		want map[string][]string
	}{
		{[]string{"report.odt"}, map[string][]string{
			s1: {src + "/docs/old/report.odt", src + "/docs/report.odt"},
			s2: {src + "/docs/old/report.odt", src + "/docs/report.odt"}}},
		{[]string{"-i", "report.odt"}, map[string][]string{
			s1: {src + "/docs/old/report.odt", src + "/docs/report.odt"},
			s2: {src + "/docs/old/report.odt", src + "/docs/report.odt"},
			s3: {other + "/Report.ODT"}}},
		{[]string{"*.odt", "--path", src}, map[string][]string{
			s1: {src + "/docs/old/report.odt", src + "/docs/report.odt"},
			s2: {src + "/docs/new.odt", src + "/docs/old/report.odt", src + "/docs/report.odt"}}},
		{[]string{"docs/*.odt", "--snapshot", "latest", "--host", e.host(t)}, map[string][]string{
			s2: {src + "/docs/new.odt", src + "/docs/report.odt"}}},
		{[]string{src + "/*", "--snapshot", s1}, map[string][]string{
			s1: {src + "/bad\xff\xfe.txt", src + "/bin", src + "/dangling", src + "/docs", src + "/empty", src + "/emptydir",
				src + "/esc\x1b]0;title\a.txt", src + "/fifo", src + "/links", src + "/new\nline.txt", src + "/sparse.img", src + "/tool"}}},
		{[]string{"/**/links/?", "--tag", ""}, map[string][]string{
			s1: {src + "/links/a", src + "/links/b"},
			s2: {src + "/links/a", src + "/links/b"}}},
		{[]string{"*\n*", "esc*"}, map[string][]string{
			s1: {src + "/esc\x1b]0;title\a.txt", src + "/new\nline.txt"},
			s2: {src + "/esc\x1b]0;title\a.txt", src + "/new\nline.txt"}}},
		// oddTree's mtimes are in 2020; the new file and the other set's
		// are from now.
		{[]string{"*.odt", "-i", "--newer", "1d"}, map[string][]string{s2: {src + "/docs/new.odt"}, s3: {other + "/Report.ODT"}}},
		{[]string{"*.odt", "--older", "2021-01-01"}, map[string][]string{
			s1: {src + "/docs/old/report.odt", src + "/docs/report.odt"},
			s2: {src + "/docs/old/report.odt", src + "/docs/report.odt"}}},
		{[]string{"*.pdf"}, map[string][]string{}},
	} {
		if got := groupPaths(e.findJSON(tc.args...)); !mapsEqual(got, tc.want) {
			t.Errorf("find %q:\n got %q\nwant %q", tc.args, got, tc.want)
		}
	}

	// Text: grouped by snapshot, names escaped, -l shows the details.
	text := e.mustRun("find", "*.txt", "-l").stdout
	if strings.ContainsAny(text, "\x1b\a") || strings.Contains(text, "\nline.txt") {
		t.Errorf("find printed a name raw:\n%q", text)
	}
	for _, want := range []string{"Found matching entries in snapshot " + s1, "Found matching entries in snapshot " + s2,
		`"` + src + `/esc\x1b]0;title\a.txt"`, `"` + src + `/new\nline.txt"`, `"` + src + `/bad\xff\xfe.txt"`, "-rw-r--r--", "matches in 2 of 3 snapshots"} {
		if !strings.Contains(text, want) {
			t.Errorf("find text lacks %q:\n%s", want, text)
		}
	}
	if r := e.mustRun("find", "*.pdf"); !strings.Contains(r.stdout, "no matches in 3 snapshots") {
		t.Errorf("find without matches: %q", r.stdout)
	}

	// The trees come from the local cache: the repository's tree packs
	// can be gone.
	trees := filepath.Join(e.repo, "trees")
	if err := os.Rename(trees, trees+".away"); err != nil {
		t.Fatal(err)
	}
	if got := groupPaths(e.findJSON("new.odt")); len(got[s2]) != 1 {
		t.Errorf("find from the cache: %q", got)
	}
	if err := os.Rename(trees+".away", trees); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"find"}, "find: give a name or pattern to look for"},
		{[]string{"find", "[x"}, `find: pattern "[x": malformed component`},
		{[]string{"find", "x", "--newer", "yesterday"}, `--newer "yesterday": want a date`},
		{[]string{"find", "x", "--newer", "2024-01-02", "--older", "2024-01-01"}, "nothing can match"},
		{[]string{"find", "x", "--snapshot", "ffffffff"}, `--snapshot ffffffff: snapshot "ffffffff": no matching snapshot`},
		{[]string{"find", "x", "--snapshot", s3, "--path", src}, "does not match --path " + src},
	} {
		if r := e.run(tc.args...); r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, %s; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// host returns this machine's name, as backups record it.
func (e *env) host(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
