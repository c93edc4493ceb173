//go:build linux

package changes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const fenceTimeout = 20 * time.Second

// testWatcher runs Watch in a goroutine until the test ends.
type testWatcher struct {
	stop func()
	done chan error
}

func startWatcher(t *testing.T, state string, roots []string, opt WatchOptions) *testWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	opt.ready = func() { close(ready) }
	var mu sync.Mutex
	ended := false
	opt.Log = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			t.Logf("watcher: "+format, args...)
		}
	}
	tw := &testWatcher{done: make(chan error, 1)}
	go func() { tw.done <- Watch(ctx, state, roots, opt) }()
	select {
	case <-ready:
	case err := <-tw.done:
		cancel()
		t.Fatalf("watcher ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("watcher not ready after 30s")
	}
	var once sync.Once
	tw.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-tw.done; err != nil {
				t.Errorf("watcher: %v", err)
			}
			mu.Lock()
			ended = true
			mu.Unlock()
		})
	}
	t.Cleanup(tw.stop)
	return tw
}

func fence(t *testing.T, j *Journal, roots []string) Cursor {
	t.Helper()
	c, err := j.Fence(context.Background(), roots, fenceTimeout)
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

// realTemp returns a temporary directory with symlinks resolved, as the
// kernel reports paths.
func realTemp(t *testing.T) string {
	d, err := filepath.EvalSymlinks(t.TempDir())
	must(t, err)
	return d
}

// sources runs a test with fanotify and with inotify.
func sources(t *testing.T, fn func(t *testing.T, opt WatchOptions, kind string)) {
	t.Run("fanotify", func(t *testing.T) { fn(t, WatchOptions{}, KindFanotify) })
	t.Run("inotify", func(t *testing.T) { fn(t, WatchOptions{ForceInotify: true}, KindInotify) })
}

// op is a filesystem operation and the directories a backup must rescan
// after it.
type fsOp struct {
	name  string
	setup func(t *testing.T, root string)
	do    func(t *testing.T, root string)
	// dirs must all be in Delta.Dirs (relative to root; "." is root).
	dirs []string
	// anyDir: at least one of these must be in Delta.Dirs.
	anyDir []string
	// trees must all be in Delta.Dirs or Delta.Trees.
	trees []string
	// inodes: at least one of these paths must be in Delta.Inodes.
	inodes []string
}

func fsOps(outside string) []fsOp {
	p := filepath.Join
	return []fsOp{
		{name: "create", do: func(t *testing.T, r string) { writeFile(t, p(r, "create", "new"), "x") }, dirs: []string{"create"}},
		{name: "append", setup: func(t *testing.T, r string) { writeFile(t, p(r, "append", "f"), "x") },
			do: func(t *testing.T, r string) {
				f, err := os.OpenFile(p(r, "append", "f"), os.O_WRONLY|os.O_APPEND, 0)
				must(t, err)
				_, err = f.WriteString("more")
				must(t, err)
				must(t, f.Close())
			}, dirs: []string{"append"}},
		{name: "chmod", setup: func(t *testing.T, r string) { writeFile(t, p(r, "chmod", "f"), "x") },
			do: func(t *testing.T, r string) { must(t, os.Chmod(p(r, "chmod", "f"), 0o600)) }, dirs: []string{"chmod"}},
		{name: "chown", setup: func(t *testing.T, r string) { writeFile(t, p(r, "chown", "f"), "x") },
			do: func(t *testing.T, r string) { must(t, os.Lchown(p(r, "chown", "f"), 1234, 1234)) }, dirs: []string{"chown"}},
		{name: "setxattr", setup: func(t *testing.T, r string) { writeFile(t, p(r, "xattr", "f"), "x") },
			do: func(t *testing.T, r string) {
				must(t, unix.Lsetxattr(p(r, "xattr", "f"), "user.tidemark", []byte("v"), 0))
			},
			dirs: []string{"xattr"}},
		{name: "rename within dir", setup: func(t *testing.T, r string) { writeFile(t, p(r, "ren", "x"), "x") },
			do: func(t *testing.T, r string) { must(t, os.Rename(p(r, "ren", "x"), p(r, "ren", "y"))) }, dirs: []string{"ren"}},
		{name: "rename across dirs", setup: func(t *testing.T, r string) {
			writeFile(t, p(r, "from", "x"), "x")
			must(t, os.MkdirAll(p(r, "to"), 0o755))
		}, do: func(t *testing.T, r string) { must(t, os.Rename(p(r, "from", "x"), p(r, "to", "x"))) }, dirs: []string{"from", "to"}},
		{name: "rename over existing", setup: func(t *testing.T, r string) {
			writeFile(t, p(r, "over", "x"), "x")
			writeFile(t, p(r, "over2", "y"), "y")
		}, do: func(t *testing.T, r string) { must(t, os.Rename(p(r, "over", "x"), p(r, "over2", "y"))) }, dirs: []string{"over", "over2"}},
		{name: "delete", setup: func(t *testing.T, r string) { writeFile(t, p(r, "del", "x"), "x") },
			do: func(t *testing.T, r string) { must(t, os.Remove(p(r, "del", "x"))) }, dirs: []string{"del"}, inodes: []string{"del/x"}},
		{name: "mkdir", setup: func(t *testing.T, r string) { must(t, os.MkdirAll(p(r, "mk"), 0o755)) },
			do: func(t *testing.T, r string) { must(t, os.Mkdir(p(r, "mk", "sub"), 0o755)) }, dirs: []string{"mk"}, trees: []string{"mk/sub"}},
		{name: "rmdir", setup: func(t *testing.T, r string) { must(t, os.MkdirAll(p(r, "rm", "sub"), 0o755)) },
			do: func(t *testing.T, r string) { must(t, os.Remove(p(r, "rm", "sub"))) }, dirs: []string{"rm"}},
		{name: "chmod dir", setup: func(t *testing.T, r string) { must(t, os.MkdirAll(p(r, "chd", "sub"), 0o755)) },
			do: func(t *testing.T, r string) { must(t, os.Chmod(p(r, "chd", "sub"), 0o700)) }, dirs: []string{"chd"}},
		{name: "hard link", setup: func(t *testing.T, r string) {
			writeFile(t, p(r, "hl1", "x"), "x")
			must(t, os.MkdirAll(p(r, "hl2"), 0o755))
		}, do: func(t *testing.T, r string) { must(t, os.Link(p(r, "hl1", "x"), p(r, "hl2", "y"))) },
			dirs: []string{"hl2"}, inodes: []string{"hl1/x", "hl2/y"}},
		{name: "hard link chmod", setup: func(t *testing.T, r string) {
			writeFile(t, p(r, "hc1", "x"), "x")
			must(t, os.MkdirAll(p(r, "hc2"), 0o755))
			must(t, os.Link(p(r, "hc1", "x"), p(r, "hc2", "y")))
		}, do: func(t *testing.T, r string) { must(t, os.Chmod(p(r, "hc1", "x"), 0o600)) },
			anyDir: []string{"hc1", "hc2"}, inodes: []string{"hc1/x", "hc2/y"}},
		{name: "unlink one of two links", setup: func(t *testing.T, r string) {
			writeFile(t, p(r, "ul1", "x"), "x")
			must(t, os.MkdirAll(p(r, "ul2"), 0o755))
			must(t, os.Link(p(r, "ul1", "x"), p(r, "ul2", "y")))
		}, do: func(t *testing.T, r string) { must(t, os.Remove(p(r, "ul1", "x"))) },
			dirs: []string{"ul1"}, inodes: []string{"ul1/x"}},
		{name: "symlink", setup: func(t *testing.T, r string) { must(t, os.MkdirAll(p(r, "sym"), 0o755)) },
			do: func(t *testing.T, r string) { must(t, os.Symlink("target", p(r, "sym", "l"))) }, dirs: []string{"sym"}},
		{name: "truncate", setup: func(t *testing.T, r string) { writeFile(t, p(r, "trunc", "f"), "xxxx") },
			do: func(t *testing.T, r string) { must(t, os.Truncate(p(r, "trunc", "f"), 1)) }, dirs: []string{"trunc"}},
		{name: "utimes", setup: func(t *testing.T, r string) { writeFile(t, p(r, "touch", "f"), "x") },
			do: func(t *testing.T, r string) {
				tm := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
				must(t, os.Chtimes(p(r, "touch", "f"), tm, tm))
			}, dirs: []string{"touch"}},
		{name: "deep new tree", setup: func(t *testing.T, r string) { must(t, os.MkdirAll(p(r, "deep"), 0o755)) },
			do:   func(t *testing.T, r string) { writeFile(t, p(r, "deep", "n1", "n2", "n3", "f"), "x") },
			dirs: []string{"deep"}, trees: []string{"deep/n1"}},
		{name: "move subtree in", setup: func(t *testing.T, r string) {
			writeFile(t, p(outside, "moved", "s1", "s2", "f"), "x")
			must(t, os.MkdirAll(p(r, "movein"), 0o755))
		}, do: func(t *testing.T, r string) {
			must(t, os.Rename(p(outside, "moved"), p(r, "movein", "moved")))
			// Right away, before a watcher could add watches.
			writeFile(t, p(r, "movein", "moved", "s1", "s2", "new"), "y")
			writeFile(t, p(r, "movein", "moved", "s1", "s3", "new"), "y")
		}, dirs: []string{"movein"}, trees: []string{"movein/moved"}},
		{name: "move dir within", setup: func(t *testing.T, r string) {
			writeFile(t, p(r, "mvd1", "d", "sub", "f"), "x")
			must(t, os.MkdirAll(p(r, "mvd2"), 0o755))
		}, do: func(t *testing.T, r string) {
			must(t, os.Rename(p(r, "mvd1", "d"), p(r, "mvd2", "d")))
			writeFile(t, p(r, "mvd2", "d", "sub", "g"), "y")
		}, dirs: []string{"mvd1", "mvd2"}, trees: []string{"mvd2/d"}},
		{name: "move subtree out", setup: func(t *testing.T, r string) { writeFile(t, p(r, "mvout", "d", "f"), "x") },
			do: func(t *testing.T, r string) { must(t, os.Rename(p(r, "mvout", "d"), p(outside, "out"))) }, dirs: []string{"mvout"}},
	}
}

func TestWatchOperations(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		outside := filepath.Join(base, "outside")
		state := filepath.Join(base, "state")
		ops := fsOps(outside)
		must(t, os.MkdirAll(outside, 0o755))
		must(t, os.MkdirAll(filepath.Join(root, "untouched", "sub"), 0o755))
		for _, o := range ops {
			if o.setup != nil {
				o.setup(t, root)
			}
		}
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		if c1.Kind != kind {
			t.Fatalf("cursor kind %q, want %q", c1.Kind, kind)
		}
		for _, o := range ops {
			o.do(t, root)
		}
		writeFile(t, filepath.Join(outside, "noise"), "x")
		c2 := fence(t, j, []string{root})
		d, err := j.Since(c1, c2, []string{root})
		must(t, err)
		checkDelta(t, root, d, ops)
		for _, p := range append(append([]string(nil), d.Dirs...), d.Trees...) {
			if !within(p, root) {
				t.Errorf("delta has %s outside the root", p)
			}
			if within(p, filepath.Join(root, "untouched")) {
				t.Errorf("delta has untouched %s", p)
			}
		}
		// Nothing changed since c2.
		c3 := fence(t, j, []string{root})
		d, err = j.Since(c2, c3, []string{root})
		must(t, err)
		// Inodes without a path may come from hard-linked files anywhere
		// on the filesystem (other tests run meanwhile); backups match
		// them against their own records.
		pathed := 0
		for _, in := range d.Inodes {
			if in.Path != "" {
				pathed++
			}
		}
		if len(d.Dirs)+len(d.Trees)+pathed != 0 {
			t.Errorf("delta after no change: %+v", d)
		}
	})
}

func checkDelta(t *testing.T, root string, d Delta, ops []fsOp) {
	t.Helper()
	abs := func(rel string) string { return filepath.Join(root, rel) }
	dirs := map[string]bool{}
	for _, p := range d.Dirs {
		dirs[p] = true
	}
	trees := map[string]bool{}
	for _, p := range d.Trees {
		trees[p] = true
	}
	inodes := map[string]bool{}
	for _, in := range d.Inodes {
		inodes[in.Path] = true
	}
	for _, o := range ops {
		for _, rel := range o.dirs {
			if !dirs[abs(rel)] {
				t.Errorf("%s: %s not in delta dirs %v", o.name, rel, d.Dirs)
			}
		}
		if len(o.anyDir) > 0 && !slices.ContainsFunc(o.anyDir, func(rel string) bool { return dirs[abs(rel)] }) {
			t.Errorf("%s: none of %v in delta dirs", o.name, o.anyDir)
		}
		for _, rel := range o.trees {
			if !trees[abs(rel)] && !dirs[abs(rel)] {
				t.Errorf("%s: %s not in delta trees %v", o.name, rel, d.Trees)
			}
		}
		if len(o.inodes) > 0 && !slices.ContainsFunc(o.inodes, func(rel string) bool { return inodes[abs(rel)] }) {
			t.Errorf("%s: none of %v in delta inodes %v", o.name, o.inodes, d.Inodes)
		}
	}
}

func wantGap(t *testing.T, err error, reason string) {
	t.Helper()
	var g *GapError
	if !errors.Is(err, ErrGap) || !errors.As(err, &g) {
		t.Fatalf("got %v, want a gap %q", err, reason)
	}
	if !strings.Contains(g.Reason, reason) {
		t.Fatalf("gap reason %q, want %q", g.Reason, reason)
	}
}

// pauser blocks a source's reads while paused, so the kernel queue fills.
type pauser struct {
	mu      sync.Mutex
	paused  bool
	blocked chan struct{} // receives when a read blocks
	resume  chan struct{}
}

func newPauser() *pauser {
	return &pauser{blocked: make(chan struct{}, 1), resume: make(chan struct{})}
}

func (p *pauser) hook(string) {
	p.mu.Lock()
	paused := p.paused
	p.mu.Unlock()
	if paused {
		select {
		case p.blocked <- struct{}{}:
		default:
		}
		<-p.resume
	}
}

func (p *pauser) pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

func (p *pauser) unpause() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
	close(p.resume)
}

func TestWatchOverflow(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		must(t, os.MkdirAll(filepath.Join(root, "many"), 0o755))
		p := newPauser()
		opt.beforeRead = p.hook
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		p.pause()
		writeFile(t, filepath.Join(root, "wake"), "x") // makes the reader reach the hook
		select {
		case <-p.blocked:
		case <-time.After(10 * time.Second):
			t.Fatal("reader did not block")
		}
		// Both queues hold 16384 events by default; distinct names do not
		// merge.
		n := 0
		for n = 0; n < 20000; n++ {
			f, err := os.Create(filepath.Join(root, "many", fmt.Sprintf("f%05d", n)))
			must(t, err)
			must(t, f.Close())
		}
		p.unpause()
		c2 := fence(t, j, []string{root})
		_, err = j.Since(c1, c2, []string{root})
		wantGap(t, err, "overflow")
		// After the overflow, the record is whole again.
		writeFile(t, filepath.Join(root, "after", "f"), "x")
		c3 := fence(t, j, []string{root})
		d, err := j.Since(c2, c3, []string{root})
		must(t, err)
		if !slices.Contains(d.Dirs, filepath.Join(root, "after")) {
			t.Errorf("delta after overflow %v lacks the new directory", d.Dirs)
		}
		st, err := j.Status()
		must(t, err)
		if len(st.Gaps) == 0 || st.Gaps[len(st.Gaps)-1].Reason != "overflow" {
			t.Errorf("status gaps %+v, want an overflow", st.Gaps)
		}
	})
}

func TestFenceNoWatcher(t *testing.T) {
	base := realTemp(t)
	j, err := OpenJournal(filepath.Join(base, "state"))
	must(t, err)
	_, err = j.Fence(context.Background(), []string{base}, time.Second)
	wantGap(t, err, "watcher not running")

	// A watcher that ran and stopped leaves its state file behind.
	root := filepath.Join(base, "root")
	w := startWatcher(t, filepath.Join(base, "state"), []string{root}, WatchOptions{})
	c1 := fence(t, j, []string{root})
	w.stop()
	_, err = j.Fence(context.Background(), []string{root}, time.Second)
	wantGap(t, err, "watcher not running")
	st, err := j.Status()
	must(t, err)
	if st.Alive || st.Watcher == nil || st.Watcher.Epoch != c1.Epoch {
		t.Errorf("status after stop: alive %v watcher %+v", st.Alive, st.Watcher)
	}
}

func TestFencePathNotWatched(t *testing.T) {
	base := realTemp(t)
	root := filepath.Join(base, "root")
	state := filepath.Join(base, "state")
	startWatcher(t, state, []string{root}, WatchOptions{})
	j, err := OpenJournal(state)
	must(t, err)
	_, err = j.Fence(context.Background(), []string{filepath.Join(base, "other")}, time.Second)
	wantGap(t, err, "path not watched: "+filepath.Join(base, "other"))
	// A path below a root is watched.
	c1 := fence(t, j, []string{filepath.Join(root, "sub")})
	c2 := fence(t, j, []string{root})
	_, err = j.Since(c1, c2, []string{filepath.Join(base, "other")})
	wantGap(t, err, "path not watched")
}

func TestFenceTimeout(t *testing.T) {
	base := realTemp(t)
	root := filepath.Join(base, "root")
	state := filepath.Join(base, "state")
	p := newPauser()
	startWatcher(t, state, []string{root}, WatchOptions{beforeRead: p.hook})
	j, err := OpenJournal(state)
	must(t, err)
	fence(t, j, []string{root})
	p.pause()
	writeFile(t, filepath.Join(root, "wake"), "x")
	<-p.blocked
	_, err = j.Fence(context.Background(), []string{root}, 300*time.Millisecond)
	wantGap(t, err, "fence timeout")
	p.unpause()
}

func TestWatcherRestartIsNewEpoch(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		w := startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		w.stop()
		writeFile(t, filepath.Join(root, "unseen"), "x") // while no watcher runs
		startWatcher(t, state, []string{root}, opt)
		c2 := fence(t, j, []string{root})
		if c2.Epoch == c1.Epoch {
			t.Fatal("restarted watcher kept its epoch")
		}
		_, err = j.Since(c1, c2, []string{root})
		wantGap(t, err, "epoch changed")
		if _, err := os.Stat(j.l.epoch(c1.Epoch)); !os.IsNotExist(err) {
			t.Errorf("old epoch's journal not removed: %v", err)
		}
	})
}

func TestTwoWatchers(t *testing.T) {
	base := realTemp(t)
	state := filepath.Join(base, "state")
	startWatcher(t, state, []string{base}, WatchOptions{ForceInotify: true})
	err := Watch(context.Background(), state, []string{base}, WatchOptions{ForceInotify: true})
	if !errors.Is(err, errWatcherRunning) {
		t.Fatalf("second watcher: %v, want %v", err, errWatcherRunning)
	}
}

// TestMain lets TestWatcherKilled run a watcher in a child process.
func TestMain(m *testing.M) {
	if state := os.Getenv("TIDEMARK_TEST_WATCHER_STATE"); state != "" {
		err := Watch(context.Background(), state, strings.Split(os.Getenv("TIDEMARK_TEST_WATCHER_ROOTS"), ":"),
			WatchOptions{ready: func() { fmt.Println("ready") }})
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func TestWatcherKilled(t *testing.T) {
	base := realTemp(t)
	root := filepath.Join(base, "root")
	state := filepath.Join(base, "state")
	must(t, os.MkdirAll(root, 0o755))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TIDEMARK_TEST_WATCHER_STATE="+state, "TIDEMARK_TEST_WATCHER_ROOTS="+root)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		_ = cmd.Process.Kill()
		t.Fatalf("child watcher: %q %v", buf, err)
	}
	j, err := OpenJournal(state)
	must(t, err)
	c1 := fence(t, j, []string{root})
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	writeFile(t, filepath.Join(root, "unseen"), "x")
	_, err = j.Fence(context.Background(), []string{root}, time.Second)
	wantGap(t, err, "watcher not running")
	if _, err := os.Stat(j.l.watcher()); err != nil {
		t.Fatalf("killed watcher's state file: %v", err)
	}
	startWatcher(t, state, []string{root}, WatchOptions{})
	c2 := fence(t, j, []string{root})
	_, err = j.Since(c1, c2, []string{root})
	wantGap(t, err, "epoch changed")
}

func TestRootCreatedLater(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "a", "b", "root")
		state := filepath.Join(base, "state")
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		writeFile(t, filepath.Join(root, "x", "f"), "x")
		c2 := fence(t, j, []string{root})
		d, err := j.Since(c1, c2, []string{root})
		must(t, err)
		if !slices.Contains(d.Trees, root) || !slices.Contains(d.Dirs, root) {
			t.Errorf("created root not in delta: %+v", d)
		}
		// Now that it exists, changes inside are recorded precisely.
		writeFile(t, filepath.Join(root, "x", "g"), "x")
		c3 := fence(t, j, []string{root})
		d, err = j.Since(c2, c3, []string{root})
		must(t, err)
		if !slices.Contains(d.Dirs, filepath.Join(root, "x")) {
			t.Errorf("change in created root not in delta: %+v", d)
		}
		// Replacing the root (renaming an ancestor away) rescans it whole.
		must(t, os.Rename(filepath.Join(base, "a"), filepath.Join(base, "old")))
		writeFile(t, filepath.Join(root, "new"), "x")
		c4 := fence(t, j, []string{root})
		d, err = j.Since(c3, c4, []string{root})
		must(t, err)
		if !slices.Contains(d.Trees, root) {
			t.Errorf("replaced root not in delta trees: %+v", d)
		}
		for _, p := range d.Dirs {
			if !within(p, root) {
				t.Errorf("delta has %s outside the root", p)
			}
		}
	})
}

func TestStateDirInsideRoot(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		root := realTemp(t)
		state := filepath.Join(root, ".local", "state", "tidemark")
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		time.Sleep(3 * heartbeatInterval / 2) // a heartbeat rewrites watcher.json
		c2 := fence(t, j, []string{root})
		d, err := j.Since(c1, c2, []string{root})
		must(t, err)
		// The journal's own writes are not recorded event by event (that
		// would feed back), but its directories are listed at each fence
		// so a journal-driven backup of root still sees them change.
		if !slices.Contains(d.Dirs, state) || !slices.Contains(d.Dirs, filepath.Join(state, "journal", c1.Epoch)) {
			t.Errorf("state directories not in delta: %v", d.Dirs)
		}
		// Other processes may change files in the temporary directory, but
		// the journal's own writes must not be recorded one by one.
		n := 0
		must(t, scanJournal(j.l.epoch(c1.Epoch), c1.Seq, c2.Seq, func(r Record) error {
			if r.Path != "" && within(r.Path, state) {
				n++
			}
			return nil
		}))
		if n > 6 {
			t.Errorf("%d records of the state directory while idle: feedback?", n)
		}
	})
}

// TestHardLinkOutsideRoot: changes to a file through a link outside the
// roots, which no directory below a root sees, are reported by inode
// number; fanotify sees them on the inode, inotify through a watch on each
// multiply-linked file.
func TestHardLinkOutsideRoot(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		in := filepath.Join(root, "d", "in")
		link := filepath.Join(base, "out", "link")
		writeFile(t, in, "x")
		must(t, os.MkdirAll(filepath.Join(base, "out"), 0o755))
		must(t, os.Link(in, link))
		var st unix.Stat_t
		must(t, unix.Stat(in, &st))
		byNumber := func(d Delta) bool {
			return slices.ContainsFunc(d.Inodes, func(in Inode) bool { return in.Dev == st.Dev && in.Ino == st.Ino })
		}
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c := fence(t, j, []string{root})
		for _, change := range []struct {
			name string
			do   func() error
		}{
			{"chmod", func() error { return os.Chmod(link, 0o600) }},
			{"append", func() error {
				f, err := os.OpenFile(link, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					return err
				}
				f.WriteString("more")
				return f.Close()
			}},
			{"another link outside", func() error { return os.Link(link, link+"2") }},
			{"that link removed", func() error { return os.Remove(link + "2") }},
		} {
			must(t, change.do())
			next := fence(t, j, []string{root})
			d, err := j.Since(c, next, []string{root})
			must(t, err)
			if !byNumber(d) {
				t.Errorf("%s through an outside link not reported by inode number: %+v", change.name, d)
			}
			c = next
		}
	})
}

// TestLinkAddedOutsideRoot is defect 4: `ln root/d2/x out/xlink` makes x
// hard-linked, and a backup of root must learn of it (fanotify; inotify
// cannot see it, a known gap). The kernel reports FAN_ATTRIB with only the
// file's handle, which resolves to the new name, and FAN_CREATE in out.
func TestLinkAddedOutsideRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify filesystem marks need root (CAP_SYS_ADMIN)")
	}
	base := realTemp(t)
	root := filepath.Join(base, "root")
	state := filepath.Join(base, "state")
	x := filepath.Join(root, "d2", "x")
	writeFile(t, x, "x")
	must(t, os.MkdirAll(filepath.Join(base, "out"), 0o755))
	var st unix.Stat_t
	must(t, unix.Stat(x, &st))
	startWatcher(t, state, []string{root}, WatchOptions{})
	j, err := OpenJournal(state)
	must(t, err)
	c1 := fence(t, j, []string{root})
	if c1.Kind != KindFanotify {
		t.Skipf("watcher uses %s", c1.Kind)
	}
	must(t, os.Link(x, filepath.Join(base, "out", "xlink")))
	c2 := fence(t, j, []string{root})
	d, err := j.Since(c1, c2, []string{root})
	must(t, err)
	found := slices.ContainsFunc(d.Inodes, func(in Inode) bool {
		if in.Path == x {
			return true // resolved to the name inside: listed, and the backup sees the link count
		}
		return in.Dev == st.Dev && in.Ino == st.Ino && in.LinkAdded
	})
	if !found {
		t.Fatalf("a link added outside the root is not reported: %+v", d)
	}
	// Publishing a file by link and unlink outside the roots (what
	// repositories and editors do) leaves nothing for a backup of root to
	// act on, even when a fence comes in between.
	tmp := filepath.Join(base, "out", "tmp")
	writeFile(t, tmp, "y")
	must(t, os.Link(tmp, filepath.Join(base, "out", "final")))
	go func() {
		time.Sleep(20 * time.Millisecond)
		os.Remove(tmp)
	}()
	c3 := fence(t, j, []string{root})
	d, err = j.Since(c2, c3, []string{root})
	must(t, err)
	for _, in := range d.Inodes {
		if in.LinkAdded {
			t.Errorf("a link added and removed outside, reported: %+v", d)
		}
	}
}

func TestMountInsideRoot(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		mnt := filepath.Join(root, "mnt")
		must(t, os.MkdirAll(mnt, 0o755))
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
			t.Skipf("cannot mount tmpfs: %v", err)
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		c2 := fence(t, j, []string{root})
		d, err := j.Since(c1, c2, []string{root})
		must(t, err)
		if !slices.Contains(d.Trees, mnt) || !slices.Contains(d.Dirs, root) {
			t.Errorf("mount not in delta: %+v", d)
		}
		// Changes on the mounted filesystem are recorded.
		writeFile(t, filepath.Join(mnt, "sub", "f"), "x")
		c3 := fence(t, j, []string{root})
		d, err = j.Since(c2, c3, []string{root})
		must(t, err)
		if !slices.Contains(d.Dirs, filepath.Join(mnt, "sub")) {
			t.Errorf("change on the mounted filesystem not in delta: %+v", d)
		}
		must(t, unix.Unmount(mnt, 0))
		c4 := fence(t, j, []string{root})
		d, err = j.Since(c3, c4, []string{root})
		if err == nil && !slices.Contains(d.Trees, mnt) {
			t.Errorf("unmount not in delta: %+v", d)
		}
		if err != nil {
			wantGap(t, err, "unmounted")
		}
		// A filesystem no source can watch: proc.
		if err := unix.Mount("proc", mnt, "proc", 0, ""); err != nil {
			t.Skipf("cannot mount proc: %v", err)
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		if kind == KindFanotify {
			_, err = j.Fence(context.Background(), []string{root}, fenceTimeout)
			wantGap(t, err, "unsupported filesystem")
			if _, err := j.Fence(context.Background(), []string{filepath.Join(root, "other")}, fenceTimeout); err != nil {
				t.Errorf("fence of a root beside the unsupported mount: %v", err)
			}
		}
	})
}

// TestWatcherStopsUnderChurn stops a fanotify watcher while it works
// through a backlog of events in directories deeper than PATH_MAX, amid
// directories renamed (which empties the path cache), removed and made
// again: it must exit within a second or two, however much is queued.
func TestWatcherStopsUnderChurn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify filesystem marks need root (CAP_SYS_ADMIN)")
	}
	base := realTemp(t)
	root := filepath.Join(base, "root")
	out := filepath.Join(base, "out")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.MkdirAll(out, 0o755))
	top, _ := deepDir(t, root, 20)
	const leaves = 1500
	for i := 0; i < leaves; i++ {
		must(t, unix.Mkdirat(top, fmt.Sprintf("l%04d", i), 0o755))
	}
	p := newPauser()
	w := startWatcher(t, filepath.Join(base, "state"), []string{root}, WatchOptions{beforeRead: p.hook})
	j, err := OpenJournal(filepath.Join(base, "state"))
	must(t, err)
	if c := fence(t, j, []string{root}); c.Kind != KindFanotify {
		t.Skipf("watcher uses %s", c.Kind)
	}
	p.pause()
	writeFile(t, filepath.Join(root, "wake"), "x")
	<-p.blocked
	// A backlog: each event in another deep directory, each followed by
	// a directory rename; directories removed and made again.
	for i := 0; i < 4000; i++ {
		leaf := fmt.Sprintf("l%04d", i%leaves)
		if fd, err := unix.Openat(top, leaf+"/f"+strconv.Itoa(i), unix.O_WRONLY|unix.O_CREAT, 0o644); err == nil {
			unix.Close(fd)
		}
		a, b := filepath.Join(root, "ra"), filepath.Join(out, "rb")
		if i%2 == 0 {
			os.MkdirAll(a, 0o755)
			os.Rename(a, b)
		} else {
			os.Rename(b, a)
		}
		if i%50 == 0 {
			os.RemoveAll(filepath.Join(root, "rc"))
			os.MkdirAll(filepath.Join(root, "rc", "sub", "sub"), 0o755)
			unix.Unlinkat(top, leaf, unix.AT_REMOVEDIR)
		}
	}
	p.unpause()
	time.Sleep(500 * time.Millisecond) // deep in the backlog
	start := time.Now()
	w.stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the watcher took %v to stop", d)
	} else {
		t.Logf("stopped in %v", d)
	}
}

// TestWatchdogReportsStall makes event handling hang (as a system call on
// a dead filesystem would): the watchdog says so in the status, a fence
// fails at once with that reason instead of waiting, and the watcher still
// stops promptly.
func TestWatchdogReportsStall(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		must(t, os.MkdirAll(root, 0o755))
		var armed atomic.Bool
		release := make(chan struct{})
		defer close(release)
		opt.beforeEvent = func(string) {
			if armed.Load() {
				<-release
			}
		}
		opt.stallAfter = time.Second
		w := startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		fence(t, j, []string{root})
		armed.Store(true)
		writeFile(t, filepath.Join(root, "f"), "x")
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := j.Status()
			must(t, err)
			if st.Stalled {
				if !strings.Contains(st.Watcher.Stalled, kind+" source stuck") || st.Fresh {
					t.Fatalf("status: %+v", st.Watcher)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no stall reported: %+v", st.Watcher)
			}
			time.Sleep(100 * time.Millisecond)
		}
		start := time.Now()
		_, err = j.Fence(context.Background(), []string{root}, time.Minute)
		wantGap(t, err, "watcher stalled: the "+kind+" source stuck")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the fence took %v to fail", d)
		}
		start = time.Now()
		w.stop()
		if d := time.Since(start); d > stopWait+time.Second {
			t.Errorf("the watcher took %v to stop", d)
		}
	})
}

// TestChurnRecordsNoGap deletes and creates directories and files as fast
// as it can, so that inode numbers are reused while the watcher opens
// handles of the deleted ones (ext4 then answers ENOMEM, not ESTALE, for
// a moment): the record must stay whole.
func TestChurnRecordsNoGap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fanotify filesystem marks need root (CAP_SYS_ADMIN)")
	}
	base := realTemp(t)
	root := filepath.Join(base, "root")
	out := filepath.Join(base, "out")
	must(t, os.MkdirAll(root, 0o755))
	must(t, os.MkdirAll(out, 0o755))
	state := filepath.Join(base, "state")
	startWatcher(t, state, []string{root}, WatchOptions{})
	j, err := OpenJournal(state)
	must(t, err)
	c1 := fence(t, j, []string{root})
	if c1.Kind != KindFanotify {
		t.Skipf("watcher uses %s", c1.Kind)
	}
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				d := filepath.Join(root, fmt.Sprintf("g%d-%d", g, i%3))
				os.MkdirAll(filepath.Join(d, "a", "b"), 0o755)
				os.WriteFile(filepath.Join(d, "a", "b", "f"), []byte("x"), 0o644)
				tmp := filepath.Join(out, fmt.Sprintf("g%d", g))
				os.Rename(d, tmp)
				os.WriteFile(filepath.Join(tmp, "a", "f"), []byte("y"), 0o644)
				os.Rename(tmp, d)
				if i%2 == 0 {
					os.RemoveAll(d)
				}
			}
		}()
	}
	wg.Wait()
	c2 := fence(t, j, []string{root})
	if _, err := j.Since(c1, c2, []string{root}); err != nil && !strings.Contains(err.Error(), "overflow") {
		t.Fatalf("after churn: %v", err)
	}
}

// TestFenceWaitsForBusyWatcher: a watcher working through a backlog (a
// loaded machine) is waited for beyond the fence timeout while it makes
// progress, up to the overall bound; one that makes none ends the wait.
func TestFenceWaitsForBusyWatcher(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		must(t, os.MkdirAll(filepath.Join(root, "many"), 0o755))
		var slow atomic.Bool
		opt.beforeEvent = func(string) {
			if slow.Load() {
				time.Sleep(3 * time.Millisecond)
			}
		}
		var cur atomic.Pointer[pauser]
		cur.Store(newPauser())
		opt.beforeRead = func(src string) { cur.Load().hook(src) }
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		fence(t, j, []string{root})
		// hold blocks the reads and queues n events behind the block.
		hold := func(prefix string, n int) *pauser {
			t.Helper()
			p := newPauser()
			cur.Store(p)
			p.pause()
			writeFile(t, filepath.Join(root, "wake"), prefix)
			<-p.blocked
			for i := 0; i < n; i++ {
				writeFile(t, filepath.Join(root, "many", fmt.Sprintf("%s%04d", prefix, i)), "x")
			}
			return p
		}

		// About 6s of work, a fence timeout of 2.5s: waited for. (inotify
		// reports three events per file written, fanotify merges them;
		// fanotify also handles, as slowly, whatever else happens on the
		// filesystem.) Progress shows in the journal and in the event
		// count of each heartbeat (every 2s), so shorter timeouts would
		// not see it.
		files := 2000
		if kind == KindInotify {
			files = 700
		}
		p := hold("a", files)
		slow.Store(true)
		p.unpause()
		start := time.Now()
		if _, err := j.Fence(context.Background(), []string{root}, 2500*time.Millisecond); err != nil {
			t.Fatalf("busy watcher: %v after %v", err, time.Since(start))
		}
		t.Logf("busy watcher answered after %v", time.Since(start))

		// The same, but the overall bound is shorter than the work.
		j.maxFenceWait = 3 * time.Second
		p = hold("b", files)
		p.unpause()
		_, err = j.Fence(context.Background(), []string{root}, 2500*time.Millisecond)
		wantGap(t, err, "fence timeout: the watcher was still busy")
		j.maxFenceWait = MaxFenceWait
		slow.Store(false)
		fence(t, j, []string{root})

		// No progress at all (reads blocked): the timeout.
		p = hold("c", 0)
		start = time.Now()
		_, err = j.Fence(context.Background(), []string{root}, 700*time.Millisecond)
		wantGap(t, err, "showed no progress for 700ms")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("no-progress timeout took %v", d)
		}
		p.unpause()
	})
}

// TestFenceEndsWhenWatcherStops: a fence waiting for a watcher that stops
// meanwhile fails at once with that reason, not at its timeout.
func TestFenceEndsWhenWatcherStops(t *testing.T) {
	base := realTemp(t)
	root := filepath.Join(base, "root")
	state := filepath.Join(base, "state")
	p := newPauser()
	w := startWatcher(t, state, []string{root}, WatchOptions{beforeRead: p.hook})
	defer p.unpause()
	j, err := OpenJournal(state)
	must(t, err)
	fence(t, j, []string{root})
	p.pause()
	writeFile(t, filepath.Join(root, "wake"), "x")
	<-p.blocked
	errc := make(chan error, 1)
	go func() {
		_, err := j.Fence(context.Background(), []string{root}, time.Minute)
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	w.stop()
	select {
	case err := <-errc:
		wantGap(t, err, "watcher not running")
		t.Logf("fence failed %v after the stop began", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("fence still waiting 10s after the watcher stopped")
	}
}

// TestExchangeDirs: renameat2(RENAME_EXCHANGE) swaps two directories in
// one step; the journal rescans both, and changes made in them afterwards
// are still seen (inotify keeps a watch per directory, which the exchange
// must not lose: both moves arrive in one read).
func TestExchangeDirs(t *testing.T) {
	sources(t, func(t *testing.T, opt WatchOptions, kind string) {
		base := realTemp(t)
		root := filepath.Join(base, "root")
		state := filepath.Join(base, "state")
		p := func(s string) string { return filepath.Join(root, s) }
		writeFile(t, p("a/d1/sub/f"), "f")
		writeFile(t, p("b/d2/sub/g"), "g")
		startWatcher(t, state, []string{root}, opt)
		j, err := OpenJournal(state)
		must(t, err)
		c1 := fence(t, j, []string{root})
		if err := unix.Renameat2(unix.AT_FDCWD, p("a/d1"), unix.AT_FDCWD, p("b/d2"), unix.RENAME_EXCHANGE); err != nil {
			t.Skipf("renameat2(RENAME_EXCHANGE): %v", err)
		}
		c2 := fence(t, j, []string{root})
		d, err := j.Since(c1, c2, []string{root})
		must(t, err)
		for _, want := range []string{p("a"), p("b")} {
			if !slices.Contains(d.Dirs, want) {
				t.Errorf("exchange: %s not in dirs %v", want, d.Dirs)
			}
		}
		for _, want := range []string{p("a/d1"), p("b/d2")} {
			if !slices.Contains(d.Trees, want) {
				t.Errorf("exchange: %s not in trees %v", want, d.Trees)
			}
		}
		// Now in each moved directory's subdirectory.
		writeFile(t, p("a/d1/sub/new"), "n")
		writeFile(t, p("b/d2/sub/new"), "n")
		c3 := fence(t, j, []string{root})
		d, err = j.Since(c2, c3, []string{root})
		must(t, err)
		for _, want := range []string{p("a/d1/sub"), p("b/d2/sub")} {
			if !slices.Contains(d.Dirs, want) {
				t.Errorf("after the exchange: %s not in dirs %v", want, d.Dirs)
			}
		}
	})
}
