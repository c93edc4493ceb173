//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/version"
)

// The everyday features a restic user reaches for (issue 16): version,
// generate, snapshot filters, tag, restoring again, names printed safely,
// argument errors, key list's user, the demo's kept repository.

// backupIDs backs up with args and returns the snapshot's ID and parent.
func (e *env) backupIDs(args ...string) (id, parent string) {
	e.t.Helper()
	r := e.mustRun(append([]string{"backup", "--json"}, args...)...)
	var b struct{ Snapshot, Parent string }
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		e.t.Fatalf("%v: %s", err, r.stdout)
	}
	return b.Snapshot, b.Parent
}

// snapshotInfos lists the snapshots the args select.
func (e *env) snapshotInfos(args ...string) []app.SnapshotInfo {
	e.t.Helper()
	var sns []app.SnapshotInfo
	r := e.mustRun(append([]string{"snapshots", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &sns); err != nil {
		e.t.Fatalf("%v: %s", err, r.stdout)
	}
	return sns
}

// runIn runs the binary in dir with env changed by edit.
func (e *env) runIn(dir string, edit func([]string) []string, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	cmd.Dir = dir
	if edit != nil {
		cmd.Env = edit(cmd.Env)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %v: %v", args, err)
	}
	return result{code, out.String(), errOut.String()}
}

func TestVersionAndGenerate(t *testing.T) {
	e := newEnv(t)
	line := e.mustRun("version").stdout
	if !strings.HasPrefix(line, "tidemark "+version.Number+" ") || !strings.Contains(line, "compiled with go") || !strings.Contains(line, "repository format 1") {
		t.Fatalf("version: %q", line)
	}
	if got := e.mustRun("--version").stdout; got != line {
		t.Fatalf("--version %q, version %q", got, line)
	}
	var v app.VersionInfo
	if err := json.Unmarshal([]byte(e.mustRun("version", "--json").stdout), &v); err != nil || v.Version != version.Number || v.RepositoryFormat != 1 || !strings.HasPrefix(v.GoVersion, "go") {
		t.Fatalf("version --json: %+v %v", v, err)
	}

	man := filepath.Join(e.dir, "man")
	out := e.mustRun("generate", "--man", man)
	for _, page := range []string{"tidemark.1", "tidemark-backup.1", "tidemark-tag.1", "tidemark-key-list.1", "tidemark-snapshots.1"} {
		b, err := os.ReadFile(filepath.Join(man, page))
		if err != nil || !bytes.Contains(b, []byte(".TH \"TIDEMARK\" \"1\"")) {
			t.Fatalf("man page %s: %v\n%s", page, err, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(man, "tidemark-snapshots.1")); !bytes.Contains(b, []byte("group-by")) || bytes.Contains(b, []byte("insecure-kdf")) {
		t.Fatalf("snapshots man page lacks --group-by or shows a hidden flag:\n%s", b)
	}
	if !strings.Contains(out.stdout, "man pages to "+man) {
		t.Fatalf("generate --man said %q", out.stdout)
	}
	if bash := e.mustRun("generate", "--completion", "bash").stdout; !strings.Contains(bash, "bash completion V2 for tidemark") {
		t.Fatalf("bash completion: %.200s", bash)
	}
	zsh := filepath.Join(e.dir, "_tidemark")
	e.mustRun("generate", "--zsh-completion", zsh)
	if b, err := os.ReadFile(zsh); err != nil || !bytes.Contains(b, []byte("#compdef tidemark")) {
		t.Fatalf("zsh completion file: %v %.100s", err, b)
	}
	if r := e.run("generate"); r.code != exitFailure || !strings.Contains(r.stderr, "give --man DIR or --completion SHELL") {
		t.Fatalf("generate without a choice: %d %s", r.code, r.stderr)
	}
	if r := e.run("generate", "--completion", "tcsh"); r.code != exitFailure || !strings.Contains(r.stderr, `--completion: unknown shell "tcsh"`) {
		t.Fatalf("unknown shell: %d %s", r.code, r.stderr)
	}
}

// TestSnapshotFilters: two backup sets, /etc-like and /usr-like, with the
// /usr one backed up last. Filters select as restic's do, and "latest"
// resolves within them.
func TestSnapshotFilters(t *testing.T) {
	e := newEnv(t)
	etc, usr := filepath.Join(e.dir, "etc"), filepath.Join(e.dir, "usr")
	for _, p := range []string{filepath.Join(etc, "hosts"), filepath.Join(usr, "bin")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("first"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun("init")
	etc1, _ := e.backupIDs("--tag", "daily,system", etc)
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	etc2, _ := e.backupIDs("--tag", "daily", etc)
	usr1, _ := e.backupIDs("--tag", "daily", "--host", "builder", usr)

	ids := func(sns []app.SnapshotInfo) []string {
		var out []string
		for _, sn := range sns {
			out = append(out, sn.ID.String())
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--path", etc}, []string{etc1, etc2}},
		{[]string{"--path", etc + "/"}, []string{etc1, etc2}}, // cleaned, as restic does
		{[]string{"--path", e.dir}, nil},                      // exact, no prefixes
		{[]string{"--host", "builder"}, []string{usr1}},
		{[]string{"-H", "builder", "--host", "nowhere"}, []string{usr1}},
		{[]string{"--tag", "daily,system"}, []string{etc1}},
		{[]string{"--tag", "system", "--tag", "nope"}, []string{etc1}},
		{[]string{"--tag", "daily", "--path", usr}, []string{usr1}},
	} {
		if got := ids(e.snapshotInfos(tc.args...)); !slices.Equal(got, tc.want) {
			t.Errorf("snapshots %v: %v, want %v", tc.args, got, tc.want)
		}
	}
	// A relative --path is taken from the working directory.
	r := e.runIn(e.dir, nil, "snapshots", "--json", "--path", "etc")
	if r.code != 0 || strings.Count(r.stdout, `"id"`) != 2 {
		t.Fatalf("snapshots --path etc (relative): %d %s %s", r.code, r.stdout, r.stderr)
	}

	// The listing shows tags and groups.
	text := e.mustRun("snapshots").stdout
	if !strings.Contains(text, "Tags") || !strings.Contains(text, "daily,system") {
		t.Fatalf("snapshots: %s", text)
	}
	grouped := e.mustRun("snapshots", "--group-by", "host,paths").stdout
	if !strings.Contains(grouped, "host builder, paths "+usr+":") || strings.Count(grouped, "ID  ") != 2 {
		t.Fatalf("snapshots --group-by host,paths:\n%s", grouped)
	}
	var groups []app.SnapshotGroup
	if err := json.Unmarshal([]byte(e.mustRun("snapshots", "--group-by", "paths", "--json").stdout), &groups); err != nil || len(groups) != 2 {
		t.Fatalf("snapshots --group-by paths --json: %+v %v", groups, err)
	}

	// "latest --path etc" is the newest /etc snapshot, though /usr ran last.
	target := filepath.Join(e.dir, "restore")
	e.mustRun("restore", "latest", "--path", etc, "--target", target)
	if b, err := os.ReadFile(filepath.Join(target, etc, "hosts")); err != nil || string(b) != "second" {
		t.Fatalf("restore latest --path etc: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(target, usr)); err == nil {
		t.Fatal("restore latest --path etc restored the /usr snapshot")
	}
	if ls := e.mustRun("ls", "latest", "--path", etc).stdout; !strings.Contains(ls, etc+"/hosts") {
		t.Fatalf("ls latest --path etc: %s", ls)
	}
	if d := e.mustRun("diff", etc1[:8], "latest", "--path", etc).stdout; !strings.Contains(d, "M  "+etc+"/hosts") {
		t.Fatalf("diff etc1 latest --path etc: %s", d)
	}
	var st app.SnapshotStats
	if err := json.Unmarshal([]byte(e.mustRun("stats", "latest", "--host", "builder", "--json").stdout), &st); err != nil || st.ID.String() != usr1 {
		t.Fatalf("stats latest --host builder: %+v %v", st, err)
	}
	var rs app.RepoStats
	if err := json.Unmarshal([]byte(e.mustRun("stats", "--path", etc, "--json").stdout), &rs); err != nil || rs.Snapshots != 2 || rs.RestoreFiles != 2 {
		t.Fatalf("stats --path etc: %+v %v", rs, err)
	}

	// An ID outside the filter, and a filter nothing matches, say so.
	if r := e.run("ls", usr1[:8], "--path", etc); r.code != exitFailure || !strings.Contains(r.stderr, "does not match --path "+etc) {
		t.Fatalf("ls ID outside the filter: %d %s", r.code, r.stderr)
	}
	if r := e.run("restore", "latest", "--host", "nowhere", "--target", target); r.code != exitFailure || !strings.Contains(r.stderr, "latest (--host nowhere): no matching snapshot") {
		t.Fatalf("restore latest --host nowhere: %d %s", r.code, r.stderr)
	}

	// forget judges only what the filters select.
	var verdicts []app.ForgetVerdict
	if err := json.Unmarshal([]byte(e.mustRun("forget", "--path", etc, "--keep-last", "1", "--dry-run", "--json").stdout), &verdicts); err != nil || len(verdicts) != 2 {
		t.Fatalf("forget --path etc --dry-run: %+v %v", verdicts, err)
	}
	if r := e.run("forget", etc1[:8], "--path", etc); r.code != exitFailure || !strings.Contains(r.stderr, "either snapshot IDs or filters") {
		t.Fatalf("forget ID --path: %d %s", r.code, r.stderr)
	}
}

// TestTagCommand: tag writes a new record for the same snapshot (same
// tree and time, "original" naming the first record) and removes the old
// one; the next backup of the set takes the new record as its parent.
func TestTagCommand(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("init")
	first, _ := e.backupIDs("--tag", "tmp", src)
	before := e.snapshotInfos()[0]

	out := e.mustRun("tag", "latest", "--add", "keep,release", "--remove", "tmp").stdout
	after := e.snapshotInfos()
	if len(after) != 1 {
		t.Fatalf("%d snapshots after tag", len(after))
	}
	sn := after[0]
	if sn.ID == before.ID || !slices.Equal(sn.Tags, []string{"keep", "release"}) || sn.Original == nil || sn.Original.String() != first ||
		sn.Tree != before.Tree || !sn.Time.Equal(before.Time) || sn.Totals != before.Totals || sn.Scan.Mode != before.Scan.Mode {
		t.Fatalf("after tag: %+v\nbefore: %+v", sn, before)
	}
	if !strings.Contains(out, "snapshot "+first[:8]+" is now "+sn.ID.Short()+", tags: keep,release") {
		t.Fatalf("tag said %q", out)
	}
	if r := e.run("ls", first[:8]); r.code != exitFailure {
		t.Fatal("the old record is still there")
	}

	// Filters select without IDs; a second change keeps the first original.
	var res app.TagResult
	if err := json.Unmarshal([]byte(e.mustRun("tag", "--tag", "keep", "--set", "", "--json").stdout), &res); err != nil || len(res.Changed) != 1 || res.Changed[0].Tags != nil {
		t.Fatalf("tag --tag keep --set '': %+v %v", res, err)
	}
	sn = e.snapshotInfos()[0]
	if len(sn.Tags) != 0 || sn.Original.String() != first {
		t.Fatalf("after --set '': %+v", sn)
	}
	if r := e.mustRun("tag", "--tag", "", "--set", "", "--json"); !strings.Contains(r.stdout, `"unchanged": 1`) {
		t.Fatalf("tag without a change: %s", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tag", "latest"}, "nothing to do"},
		{[]string{"tag", "latest", "--set", "a", "--add", "b"}, "cannot be given with --add or --remove"},
		{[]string{"tag", "nosuchid", "--add", "a"}, `snapshot "nosuchid": no matching snapshot`},
	} {
		if r := e.run(tc.args...); r.code != exitFailure || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, %s; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	_, parent := e.backupIDs(src)
	if parent != sn.ID.String() {
		t.Fatalf("backup after tag: parent %s, want %s", parent, sn.ID)
	}
}

// TestNamesPrintedSafely: file names with terminal escape sequences and
// newlines are printed escaped by ls, diff and restore's errors, and
// exactly by --json.
func TestNamesPrintedSafely(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	evil := "title\x1b]0;pwned\a"
	forged := "a\nerror: forged line"
	e.mustRun("init")
	e.mustRun("backup", src)
	for _, n := range []string{evil, forged} {
		if err := os.WriteFile(filepath.Join(src, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.mustRun("backup", src)

	clean := func(what, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\a") || strings.Contains(out, "\nerror: forged") {
			t.Errorf("%s printed a name raw:\n%q", what, out)
		}
	}
	ls := e.mustRun("ls", "latest", "-l").stdout
	clean("ls", ls)
	if !strings.Contains(ls, `/title\x1b]0;pwned\a"`) || !strings.Contains(ls, `/a\nerror: forged line"`) {
		t.Fatalf("ls does not show the names escaped:\n%s", ls)
	}
	d := e.mustRun("diff", e.snapshotInfos()[0].ID.String(), "latest").stdout
	clean("diff", d)
	if !strings.Contains(d, `+  "`+src+`/title\x1b]0;pwned\a"`) {
		t.Fatalf("diff: %s", d)
	}
	// --json keeps the names exact.
	found := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(e.mustRun("ls", "latest", "--json").stdout), "\n") {
		var l struct{ Path string }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		found[filepath.Base(l.Path)] = true
	}
	if !found[evil] || !found[forged] {
		t.Fatalf("ls --json lost the exact names: %v", found)
	}
	// Restore errors name the file escaped.
	target := filepath.Join(e.dir, "restore")
	if err := os.MkdirAll(filepath.Join(target, src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, src, evil), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run("restore", "latest", "--target", target)
	clean("restore", r.stderr)
	if r.code != exitFailure || !strings.Contains(r.stderr, `title\x1b]0;pwned\a": exists; not overwritten`) {
		t.Fatalf("restore over a different file: %d %s", r.code, r.stderr)
	}
}

// TestArgumentErrors: a command given too few or too many arguments says
// what to give, not cobra's "requires at least 1 arg(s)".
func TestArgumentErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup"}, "tidemark: backup: give the paths to back up, e.g. tidemark backup ~/work"},
		{[]string{"restore"}, "restore: give the snapshot to restore (an ID, a unique prefix or latest), e.g. tidemark restore latest --target /tmp/restore"},
		{[]string{"restore", "a", "b"}, `restore: too many arguments ("b"); give the snapshot to restore`},
		{[]string{"diff", "latest"}, "diff: give the two snapshots to compare"},
		{[]string{"ls"}, "ls: give a snapshot"},
		{[]string{"key", "remove"}, "key remove: give the key to remove"},
		{[]string{"snapshots", "latest"}, `snapshots takes no arguments, but was given "latest" (see tidemark snapshots --help)`},
	} {
		r := e.run(tc.args...)
		if r.code != exitFailure || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "arg(s)") {
			t.Errorf("%v: exit %d, %q; want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestKeyListUserWithoutUSER: a key made where $USER is unset (cron,
// systemd, containers) records the uid's name.
func TestKeyListUserWithoutUSER(t *testing.T) {
	e := newEnv(t)
	u, err := user.Current()
	if err != nil || u.Username == "" {
		t.Skipf("no user name for this uid: %v", err)
	}
	noUser := func(env []string) []string {
		return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "USER=") })
	}
	if r := e.runIn(e.dir, noUser, "init"); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	if keys := keyList(t, e); len(keys) != 1 || keys[0].Username != u.Username {
		t.Fatalf("key list: %+v, want user %s", keys, u.Username)
	}
}

// TestDemoKeepsItsRepository: the demo leaves its directory and prints
// the commands to try on it, which work; --clean removes what it made.
func TestDemoKeepsItsRepository(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "demo")
	out := e.mustRun("demo", "--files", "60", "--dir", dir).stdout
	repoDir := filepath.Join(dir, "repo")
	for _, want := range []string{
		"export TIDEMARK_REPOSITORY=" + repoDir + " TIDEMARK_PASSWORD='demo password'",
		"tidemark snapshots", "tidemark ls latest " + filepath.Join(dir, "source"),
		"tidemark restore latest --target " + filepath.Join(dir, "restore"), "rm -rf " + dir,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The printed commands, as a user would run them.
	withDemo := func(env []string) []string {
		return append(env, "TIDEMARK_REPOSITORY="+repoDir, "TIDEMARK_PASSWORD=demo password")
	}
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"--cache-dir", e.cache}, args...)...)
		cmd.Env = withDemo(withoutTidemarkEnv(os.Environ()))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("tidemark %v: %v\n%s", args, err, stderr.String())
		}
		return result{0, stdout.String(), stderr.String()}
	}
	if s := run("snapshots").stdout; !strings.Contains(s, "2 snapshots") {
		t.Fatalf("snapshots on the demo repository: %s", s)
	}
	if s := run("restore", "latest", "--target", filepath.Join(dir, "restore")).stdout; !strings.Contains(s, "were already there unchanged") {
		t.Fatalf("restore again on the demo: %s", s)
	}

	cleaned := filepath.Join(e.dir, "cleaned")
	e.mustRun("demo", "--files", "20", "--dir", cleaned, "--clean")
	ents, err := os.ReadDir(cleaned)
	if err != nil || len(ents) != 0 {
		t.Fatalf("after demo --clean: %v %v", ents, err)
	}
}
