//go:build linux

// Command bench compares Tidemark with restic on a generated tree, in one
// run on the same machine: initial backup, no-change backup, backup after
// changing some files, restore, forget with prune, and peak memory. It
// prints each time and the ratio restic/tidemark (above 1 means Tidemark
// is faster).
//
//	go run ./bench -files 200000
//	go run ./bench -tree small -files 1000000
//
// The mixed tree (the default) has files of 100 bytes to 16 KiB, every
// 500th one of 4 MiB, in directories of 100; the small tree has files under
// 4 KiB in directories of 25, where per-file costs dominate. Every row
// shows each tool's peak RSS and Tidemark's peak live heap (the index
// table is read with pread, so RSS is the process's own memory).
//
// restic is installed with `go install` (falling back to Debian's package)
// unless -restic names a binary.
//
// It builds on Linux only, by nature: it reads /proc for the watcher's CPU
// time and memory, takes peak RSS from rusage, calls sync(2) before each
// command, and times the fanotify/inotify watcher.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tidemark/tidemark/internal/gentree"
)

const resticVersion = "v0.18.1"

type tool struct {
	name string
	bin  string
	env  []string
	// args builds the command line for an operation.
	args func(op string, extra ...string) []string
}

type measure struct {
	wall time.Duration
	rss  int64 // KiB
	heap int64 // peak live heap in MiB (Tidemark only; -1 unknown)
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == measureArg {
		os.Exit(measureChild(os.Args[2:]))
	}
	files := flag.Int("files", 200000, "number of files in the generated tree")
	changes := flag.Int("changes", 100, "files changed before the incremental backup")
	work := flag.String("dir", "", "work directory (default: a temporary one, removed afterwards)")
	resticBin := flag.String("restic", "", "restic binary (default: install "+resticVersion+")")
	journal := flag.Bool("journal", true, "also benchmark journal-driven backups with a running watcher")
	s3 := flag.Bool("s3", false, "keep both repositories on a local S3 server (versitygw, which must be installed) instead of local directories")
	tree := flag.String("tree", "mixed", "the generated tree: mixed (sizes up to 16 KiB and some 4 MiB files) or small (every file under 4 KiB, 25 a directory)")
	flag.Parse()
	if *tree != "mixed" && *tree != "small" {
		fmt.Fprintf(os.Stderr, "bench: -tree %q: want mixed or small\n", *tree)
		os.Exit(2)
	}
	if err := run(*files, *changes, *work, *resticBin, *journal, *s3, *tree == "small"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(files, changes int, work, resticBin string, journal, s3, small bool) error {
	ctx := context.Background()
	if work == "" {
		d, err := os.MkdirTemp("", "tidemark-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	tm := filepath.Join(bin, "tidemark")
	fmt.Println("building tidemark ...")
	if out, err := exec.Command("go", "build", "-o", tm, "./cmd/tidemark").CombinedOutput(); err != nil {
		return fmt.Errorf("build tidemark: %v\n%s", err, out)
	}
	if resticBin == "" {
		var err error
		if resticBin, err = installRestic(bin); err != nil {
			return err
		}
	}
	ver, _ := exec.Command(resticBin, "version").Output()
	fmt.Printf("restic: %s", ver)

	src := filepath.Join(work, "src")
	spec := gentree.Spec{Files: files, Seed: 42}
	kind := "mixed"
	if small {
		spec.Small, spec.PerDir, kind = true, 25, "small"
	}
	fmt.Printf("generating %d files (%s tree) ...\n", files, kind)
	st, err := gentree.Generate(src, spec)
	if err != nil {
		return err
	}
	fmt.Printf("tree: %d files, %d dirs, %.1f MiB\n", st.Files, st.Dirs, float64(st.Bytes)/(1<<20))
	// Let ctimes age past Tidemark's racy-timestamp window, as on a real
	// system where files were not written a moment ago.
	time.Sleep(1100 * time.Millisecond)

	tmRepo, resticRepo := filepath.Join(work, "tm-repo"), filepath.Join(work, "restic-repo")
	var s3env []string
	if s3 {
		endpoint, env, stop, err := startS3(filepath.Join(work, "s3"))
		if err != nil {
			return err
		}
		defer stop()
		s3env = env
		tmRepo = "s3:http://" + endpoint + "/bench/tidemark"
		resticRepo = "s3:http://" + endpoint + "/bench/restic"
		fmt.Printf("repositories on versitygw at %s (S3 over plain HTTP on loopback)\n", endpoint)
	}
	tools := []*tool{
		{name: "tidemark", bin: tm, env: append([]string{"TIDEMARK_REPOSITORY=" + tmRepo, "TIDEMARK_PASSWORD=bench", "TIDEMARK_PEAK_HEAP=1",
			"XDG_CACHE_HOME=" + filepath.Join(work, "tm-cache")}, s3env...),
			args: func(op string, extra ...string) []string {
				switch op {
				case "init":
					return []string{"init", "-q"}
				case "backup":
					return append([]string{"backup", "-q", "--host", "bench"}, extra...)
				case "restore":
					return []string{"restore", "-q", "latest", "--target", extra[0]}
				case "prune":
					// Same rule and options for both: keep the newest
					// snapshot, repack above 5% unused.
					return []string{"forget", "-q", "--keep-last", "1", "--prune"}
				}
				return nil
			}},
		{name: "restic", bin: resticBin, env: append([]string{"RESTIC_REPOSITORY=" + resticRepo, "RESTIC_PASSWORD=bench",
			"RESTIC_CACHE_DIR=" + filepath.Join(work, "restic-cache")}, s3env...),
			args: func(op string, extra ...string) []string {
				switch op {
				case "init":
					return []string{"init", "-q"}
				case "backup":
					return append([]string{"backup", "-q", "--host", "bench"}, extra...)
				case "restore":
					return []string{"restore", "-q", "latest", "--target", extra[0]}
				case "prune":
					// Same rule and options for both: keep the newest
					// snapshot, repack above 5% unused.
					return []string{"forget", "-q", "--keep-last", "1", "--prune"}
				}
				return nil
			}},
	}
	ops := []string{"initial backup", "no-change backup", fmt.Sprintf("backup after changing %d files", changes), "restore", "forget all but the last, prune"}
	results := map[string][]measure{}
	for _, t := range tools {
		if _, err := t.exec(ctx, "init"); err != nil {
			return err
		}
	}
	// Interleave the tools per step so both see the same page cache state.
	for step, op := range ops {
		if step == 2 {
			if _, err := gentree.Modify(src, changes, 7); err != nil {
				return err
			}
			time.Sleep(1100 * time.Millisecond)
		}
		for _, t := range tools {
			var m measure
			var err error
			if op == "restore" {
				target := filepath.Join(work, "restore-"+t.name)
				m, err = t.exec(ctx, "restore", target)
				if err == nil {
					err = gentree.Compare(src, filepath.Join(target, src))
				}
				os.RemoveAll(target)
			} else if step == 4 {
				m, err = t.exec(ctx, "prune")
			} else {
				m, err = t.exec(ctx, "backup", src)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", t.name, op, err)
			}
			results[t.name] = append(results[t.name], m)
			fmt.Printf("  %-9s %-32s %8.2fs  %7.1f MiB peak RSS%s\n", t.name, op, m.wall.Seconds(), float64(m.rss)/1024, heapNote(m))
		}
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "operation (%d files, %s tree)\ttidemark\trestic\trestic/tidemark\ttidemark RSS\trestic RSS\trestic/tidemark\ttidemark heap\t\n", files, kind)
	var peakT, peakR int64
	for i, op := range ops {
		a, b := results["tidemark"][i], results["restic"][i]
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2fs\t%.2fx\t%.0f MiB\t%.0f MiB\t%.2fx\t%s\t\n", op, a.wall.Seconds(), b.wall.Seconds(), b.wall.Seconds()/a.wall.Seconds(),
			float64(a.rss)/1024, float64(b.rss)/1024, float64(b.rss)/float64(a.rss), heapCell(a))
		peakT, peakR = max(peakT, a.rss), max(peakR, b.rss)
	}
	fmt.Fprintf(tw, "peak RSS\t%.0f MiB\t%.0f MiB\t%.2fx\t\t\t\t\t\n", float64(peakT)/1024, float64(peakR)/1024, float64(peakR)/float64(peakT))
	tw.Flush()
	fmt.Println("targets: initial backup >= 1.5x, no-change backup >= 4x, restore >= 2x, forget+prune >= 4x; RSS at or below restic's on every row")
	repoSize := func(d string) string {
		out, _ := exec.Command("du", "-sh", d).Output()
		return strings.Fields(string(out) + " ?")[0]
	}
	if s3 {
		fmt.Printf("repository size (bucket): %s\n", repoSize(filepath.Join(work, "s3")))
		mib := float64(st.Bytes) / (1 << 20)
		a, b := results["tidemark"], results["restic"]
		fmt.Printf("throughput to S3: initial backup tidemark %.0f MiB/s, restic %.0f MiB/s; restore tidemark %.0f MiB/s, restic %.0f MiB/s\n",
			mib/a[0].wall.Seconds(), mib/b[0].wall.Seconds(), mib/a[3].wall.Seconds(), mib/b[3].wall.Seconds())
	} else {
		fmt.Printf("repository size: tidemark %s, restic %s\n", repoSize(tmRepo), repoSize(resticRepo))
	}
	if !journal {
		return nil
	}
	return journalBench(ctx, work, src, tools[0], tools[1], files)
}

// journalBench times journal-driven incremental backups against Tidemark's
// own full scan and restic, on the same tree, with a real watcher.
func journalBench(ctx context.Context, work, src string, tm, restic *tool, files int) error {
	fmt.Printf("\n== change journal (%d files)\n", files)
	state := filepath.Join(work, "tm-state")
	tm.env = append(tm.env, "XDG_STATE_HOME="+filepath.Join(work, "xdg-state"))
	watch := exec.CommandContext(ctx, tm.bin, "watch", "--state", state, src)
	watch.Env = append(os.Environ(), tm.env...)
	var watchOut bytes.Buffer
	watch.Stdout, watch.Stderr = &watchOut, &watchOut
	if err := watch.Start(); err != nil {
		return err
	}
	defer func() {
		_ = watch.Process.Signal(syscall.SIGTERM)
		_ = watch.Wait()
	}()
	backup := func(extra ...string) (measure, error) {
		return tm.exec(ctx, "backup", append([]string{"--state", state}, append(extra, src)...)...)
	}
	// Wait for the watcher, then take the first snapshot with a cursor.
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(state, "watcher.json")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := backup(); err != nil {
		return fmt.Errorf("%w\nwatcher: %s", err, watchOut.String())
	}
	rows := [][3]string{}
	add := func(label string, m measure) {
		rows = append(rows, [3]string{label, fmt.Sprintf("%.3fs", m.wall.Seconds()), fmt.Sprintf("%.0f MiB", float64(m.rss)/1024)})
		fmt.Printf("  %-46s %8.3fs  %6.1f MiB peak RSS%s\n", label, m.wall.Seconds(), float64(m.rss)/1024, heapNote(m))
	}
	m, err := backup("--scan", "journal")
	if err != nil {
		return err
	}
	add("tidemark journal backup, no change", m)
	var j100, full100, restic100 measure
	for _, n := range []int{100, 10000} {
		if _, err := gentree.Modify(src, n, uint64(n)); err != nil {
			return err
		}
		jm, err := backup("--scan", "journal")
		if err != nil {
			return err
		}
		add(fmt.Sprintf("tidemark journal backup, %d changed", n), jm)
		if n == 100 {
			j100 = jm
			if restic100, err = restic.exec(ctx, "backup", src); err != nil {
				return err
			}
			add("restic incremental backup, 100 changed", restic100)
			if full100, err = backup("--scan", "full"); err != nil {
				return err
			}
			add("tidemark full scan (parent-assisted), 100 changed", full100)
		}
	}
	fmt.Printf("  ratios: restic/journal %.1fx, tidemark-full/journal %.1fx (100 changed files)\n",
		restic100.wall.Seconds()/j100.wall.Seconds(), full100.wall.Seconds()/j100.wall.Seconds())
	if err := hardLinkBench(ctx, src, 100, backup, add); err != nil {
		return err
	}

	// The watcher's own cost while 100,000 files are created and deleted.
	cpu0, _ := procCPU(watch.Process.Pid)
	churn := filepath.Join(src, "churn")
	os.MkdirAll(churn, 0o755)
	start := time.Now()
	for i := 0; i < 100000; i++ {
		p := filepath.Join(churn, fmt.Sprintf("c%06d", i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	cpu1, hwm := procCPU(watch.Process.Pid)
	fmt.Printf("  watcher while 100,000 files were created and deleted in %.1fs: %.2fs CPU, peak RSS %d MiB\n", took.Seconds(), (cpu1 - cpu0).Seconds(), hwm/1024)
	// A burst this size may overflow the kernel's event queue; the backup
	// then scans fully and says so, which is the point of the gap rules.
	m, err = backup()
	if err != nil {
		return err
	}
	add("tidemark backup (auto) after the churn", m)
	out, _ := exec.Command(tm.bin, "journal", "status", "--state", state).CombinedOutput()
	if strings.Contains(string(out), "overflow") {
		fmt.Println("  (the churn overflowed the kernel's event queue: that backup scanned fully, as it must)")
	}
	return nil
}

// heapNote and heapCell show a measure's peak live heap, if known.
func heapNote(m measure) string {
	if m.heap < 0 {
		return ""
	}
	return fmt.Sprintf(", %d MiB peak heap", m.heap)
}

func heapCell(m measure) string {
	if m.heap < 0 {
		return "-"
	}
	return fmt.Sprintf("%d MiB", m.heap)
}

// startS3 runs versitygw on a free loopback port serving dir and returns
// its endpoint, the AWS_* environment for both tools, and a stop function.
func startS3(dir string) (string, []string, func(), error) {
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(bin); err != nil {
			return "", nil, nil, fmt.Errorf("-s3 needs versitygw: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--access", "benchkey", "--secret", "benchsecret0123456789", "--port", addr, "--quiet", "posix", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 300 {
			stop()
			return "", nil, nil, fmt.Errorf("versitygw did not start: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	env := []string{"AWS_ACCESS_KEY_ID=benchkey", "AWS_SECRET_ACCESS_KEY=benchsecret0123456789"}
	return addr, env, stop, nil
}

// procCPU returns a process's CPU time and peak RSS (KiB).
func procCPU(pid int) (time.Duration, int64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var hwm int64
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), &hwm)
		}
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, hwm
}

// measureArg makes the bench binary a launcher for one measured command.
const measureArg = "-measure-child"

// exec runs one operation and measures wall time and the child's peak RSS.
//
// The command runs under a fresh copy of this binary (measureChild):
// Go starts children with vfork, so on Linux a child's ru_maxrss starts
// at its parent's high-water mark, and the bench holds a lot after
// comparing a million restored files. The launcher is small, so what it
// reports is the command's own peak.
func (t *tool) exec(ctx context.Context, op string, extra ...string) (measure, error) {
	self, err := os.Executable()
	if err != nil {
		return measure{}, err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{measureArg, t.bin}, t.args(op, extra...)...)...)
	cmd.Env = append(os.Environ(), t.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	r, w, err := os.Pipe()
	if err != nil {
		return measure{}, err
	}
	cmd.ExtraFiles = []*os.File{w}
	// Write back what earlier steps left dirty first: otherwise the next
	// command, whichever tool it is, pays for that writeback (file
	// creation stalls behind the filesystem journal).
	syscall.Sync()
	err = cmd.Start()
	w.Close()
	var report []byte
	if err == nil {
		report, _ = io.ReadAll(r)
		err = cmd.Wait()
	}
	r.Close()
	m := measure{heap: -1}
	var ns int64
	fmt.Sscan(string(report), &ns, &m.rss)
	m.wall = time.Duration(ns)
	if i := bytes.LastIndex(stderr.Bytes(), []byte("peak live heap ")); i >= 0 {
		fmt.Sscan(string(stderr.Bytes()[i+len("peak live heap "):]), &m.heap)
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %v\n%s", t.name, op, err, stderr.String())
	}
	return m, nil
}

// measureChild runs argv, then writes its wall time (ns) and peak RSS
// (KiB) to fd 3 and returns its exit code.
func measureChild(argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	out := os.NewFile(3, "report")
	fmt.Fprintf(out, "%d %d\n", wall.Nanoseconds(), rss)
	out.Close()
	if err != nil {
		if cmd.ProcessState != nil {
			return max(cmd.ProcessState.ExitCode(), 1)
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// installRestic installs the current restic release with go install, or
// Debian's package when the module proxy cannot provide it.
func installRestic(bin string) (string, error) {
	if p, err := exec.LookPath("restic-" + resticVersion); err == nil {
		return p, nil
	}
	fmt.Printf("installing restic %s with go install ...\n", resticVersion)
	cmd := exec.Command("go", "install", "github.com/restic/restic/cmd/restic@"+resticVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err == nil {
		return filepath.Join(bin, "restic"), nil
	} else {
		fmt.Printf("go install failed (%v): %s\nfalling back to Debian's restic\n", err, out)
	}
	if p, err := exec.LookPath("restic"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("apt-get", "install", "-y", "restic").CombinedOutput(); err != nil {
		return "", fmt.Errorf("install restic: %v\n%s", err, out)
	}
	return exec.LookPath("restic")
}
