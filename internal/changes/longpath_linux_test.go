package changes

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirPathByWalkingUp(t *testing.T) {
	root := t.TempDir()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 250)
	want := root
	for i := 0; i < 20; i++ { // about 5000 bytes: past PATH_MAX
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = nfd
		want += "/" + name
	}
	defer unix.Close(fd)
	if _, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
		t.Skip("this kernel reports long paths through /proc")
	}
	got, err := dirPathByWalkingUp(fd)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got a path of %d bytes, want %d", len(got), len(want))
	}
}
