//go:build linux

package changes

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelDev converts a userspace dev_t (st_dev) to the kernel's internal
// encoding (MAJOR<<20 | MINOR) that /proc/*/fdinfo prints.
func kernelDev(dev uint64) uint64 {
	return uint64(unix.Major(dev))<<20 | uint64(unix.Minor(dev))
}

// fanMarks returns the devices (kernel encoding) that the fanotify group
// fd has filesystem marks on. A filesystem mark disappears, silently, when
// the filesystem is unmounted; this is how the watcher notices.
func fanMarks(fd int) (map[uint64]bool, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return nil, fmt.Errorf("fanotify marks: %w", err)
	}
	marks := map[uint64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "fanotify" || !strings.HasPrefix(f[1], "sdev:") {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(f[1], "sdev:"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("fanotify marks: bad line %q", sc.Text())
		}
		marks[v] = true
	}
	return marks, sc.Err()
}

func readMountinfo() ([]mountInfo, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountinfo(data)
}

// fsType names a filesystem for messages, from mountinfo.
func fsType(mounts []mountInfo, dev uint64) string {
	t := ""
	for _, m := range mounts {
		if unix.Mkdev(m.major, m.minor) == dev {
			t = m.fstype
		}
	}
	return t
}

// mountPoint returns the mount point of the visible mount of dev that
// contains path (the longest matching prefix), or path.
func mountPoint(mounts []mountInfo, dev uint64, path string) string {
	best := ""
	for _, m := range mounts {
		if unix.Mkdev(m.major, m.minor) == dev && within(path, m.point) && len(m.point) >= len(best) {
			best = m.point
		}
	}
	if best == "" {
		return path
	}
	return best
}

// devOf returns the device of path (not following a final symlink).
func devOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
}

// linkCount returns dev, inode and link count of path (lstat).
func linkCount(path string) (dev, ino, nlink uint64, regular bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, 0, 0, false, err
	}
	return st.Dev, st.Ino, uint64(st.Nlink), st.Mode&unix.S_IFMT == unix.S_IFREG, nil
}

// goneErr reports errors that mean "the object is gone": the event that
// removed it is queued after the one being handled.
func goneErr(err error) bool {
	return err == unix.ENOENT || err == unix.ESTALE || err == unix.ENOTDIR
}

func deviceString(dev uint64) string { return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)) }
