package changes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deepDir makes levels directories of 250-byte names below base (20 are
// about 5000 bytes: past PATH_MAX) and returns an O_PATH descriptor of the
// deepest, its path, and the descriptors of the first level.
func deepDir(t *testing.T, base string, levels int) (fd int, path string) {
	t.Helper()
	fd, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	name := strings.Repeat("d", 250)
	path = base
	for i := 0; i < levels; i++ {
		must(t, unix.Mkdirat(fd, name, 0o755))
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		must(t, err)
		unix.Close(fd)
		fd = nfd
		path += "/" + name
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, path
}

func skipIfProcNamesLongPaths(t *testing.T, fd int) {
	t.Helper()
	if _, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
		t.Skip("this kernel reports long paths through /proc")
	}
}

func TestDirPathByWalkingUp(t *testing.T) {
	fd, want := deepDir(t, realTemp(t), 20)
	skipIfProcNamesLongPaths(t, fd)
	got, err := dirPath(context.Background(), fd, newResolveLimits())
	must(t, err)
	if got != want {
		t.Fatalf("got a path of %d bytes, want %d", len(got), len(want))
	}
	// A short path comes from /proc, checked.
	short := filepath.Dir(filepath.Dir(want[:200]))
	sfd, err := unix.Open(short, unix.O_PATH|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(sfd)
	if got, err := dirPath(context.Background(), sfd, newResolveLimits()); err != nil || got != short {
		t.Fatalf("short path: %q %v, want %q", got, err, short)
	}
}

// A directory renamed after the event is found where it is now; one
// removed, moved out of reach or hidden is errVanished, never a wrong path.
func TestDirPathMovedAndRemoved(t *testing.T) {
	base := realTemp(t)
	must(t, os.Mkdir(filepath.Join(base, "a"), 0o755))
	fd, path := deepDir(t, filepath.Join(base, "a"), 20)
	skipIfProcNamesLongPaths(t, fd)
	must(t, os.Rename(filepath.Join(base, "a"), filepath.Join(base, "b")))
	got, err := dirPath(context.Background(), fd, newResolveLimits())
	must(t, err)
	if want := filepath.Join(base, "b") + strings.TrimPrefix(path, filepath.Join(base, "a")); got != want {
		t.Fatalf("after a rename: got %d bytes, want %d", len(got), len(want))
	}

	// Removed: a directory below it, then the deepest directory itself
	// once what it held moved up.
	pfd, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(pfd)
	must(t, unix.Mkdirat(fd, "x", 0o755))
	xfd, err := unix.Openat(fd, "x", unix.O_PATH|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(xfd)
	must(t, unix.Unlinkat(fd, "x", unix.AT_REMOVEDIR))
	if _, err := dirPath(context.Background(), xfd, newResolveLimits()); !errors.Is(err, errVanished) {
		t.Fatalf("removed directory: %v, want errVanished", err)
	}
	must(t, unix.Mkdirat(fd, "y", 0o755))
	yfd, err := unix.Openat(fd, "y", unix.O_PATH|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(yfd)
	must(t, unix.Renameat(fd, "y", pfd, "y"))
	must(t, unix.Unlinkat(pfd, strings.Repeat("d", 250), unix.AT_REMOVEDIR))
	if _, err := dirPath(context.Background(), fd, newResolveLimits()); !errors.Is(err, errVanished) {
		t.Fatalf("removed deep directory: %v, want errVanished", err)
	}
	if got, err := dirPath(context.Background(), yfd, newResolveLimits()); err != nil || filepath.Base(got) != "y" {
		t.Fatalf("moved directory: %q %v", got, err)
	}
}

// A directory whose name cannot be found from its parent (a mount hides
// it) is errVanished after one listing, not a walk that goes on.
func TestDirPathHiddenByMount(t *testing.T) {
	base := realTemp(t)
	must(t, os.Mkdir(filepath.Join(base, "m"), 0o755))
	fd, _ := deepDir(t, filepath.Join(base, "m"), 20)
	skipIfProcNamesLongPaths(t, fd)
	if err := unix.Mount("tmpfs", filepath.Join(base, "m"), "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	defer unix.Unmount(filepath.Join(base, "m"), unix.MNT_DETACH)
	start := time.Now()
	if _, err := dirPath(context.Background(), fd, newResolveLimits()); !errors.Is(err, errVanished) {
		t.Fatalf("hidden directory: %v, want errVanished", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

// Resolution is bounded: by the entries it may examine, by time, and by
// ctx.
func TestDirPathBounded(t *testing.T) {
	top, _ := deepDir(t, realTemp(t), 20)
	skipIfProcNamesLongPaths(t, top)
	// A wide directory beyond PATH_MAX: the walk must list it.
	for i := 0; i < 3000; i++ {
		must(t, unix.Mkdirat(top, fmt.Sprintf("s%04d", i), 0o755))
	}
	fd, err := unix.Openat(top, "s1500", unix.O_PATH|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(fd)
	lim := newResolveLimits()
	if _, err := dirPath(context.Background(), fd, lim); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	used := resolveEntries - lim.entries
	lim = &resolveLimits{deadline: time.Now().Add(time.Minute), entries: used - 1, depth: resolveDepth}
	if _, err := dirPath(context.Background(), fd, lim); !errors.Is(err, errResolveBudget) {
		t.Fatalf("entry budget %d of %d: %v, want errResolveBudget", used-1, used, err)
	}
	lim = &resolveLimits{deadline: time.Now().Add(-time.Second), entries: resolveEntries, depth: resolveDepth}
	if _, err := dirPath(context.Background(), fd, lim); !errors.Is(err, errResolveBudget) {
		t.Fatalf("time budget: %v, want errResolveBudget", err)
	}
	lim = &resolveLimits{deadline: time.Now().Add(time.Minute), entries: resolveEntries, depth: 1}
	if _, err := dirPath(context.Background(), fd, lim); !errors.Is(err, errResolveBudget) {
		t.Fatalf("depth budget: %v, want errResolveBudget", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := dirPath(ctx, fd, newResolveLimits()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestParseDirents(t *testing.T) {
	ent := func(ino uint64, typ uint8, name string) []byte {
		n := (19 + len(name) + 1 + 7) &^ 7
		b := make([]byte, n)
		binary.NativeEndian.PutUint64(b, ino)
		binary.NativeEndian.PutUint16(b[16:], uint16(n))
		b[18] = typ
		copy(b[19:], name)
		return b
	}
	buf := append(ent(5, unix.DT_DIR, "a"), ent(6, unix.DT_REG, "bcd")...)
	var got []string
	parseDirents(buf, func(ino uint64, typ uint8, name string) bool {
		got = append(got, fmt.Sprintf("%d %d %s", ino, typ, name))
		return true
	})
	if strings.Join(got, ",") != "5 4 a,6 8 bcd" {
		t.Fatalf("got %v", got)
	}
	// Damaged lengths end the parse; it never loops or panics.
	for _, bad := range [][]byte{nil, buf[:10], append(ent(1, 4, "x")[:16], 0, 0, 4), append(ent(1, 4, "x")[:16], 0xff, 0xff, 4)} {
		parseDirents(bad, func(uint64, uint8, string) bool { return true })
	}
}
