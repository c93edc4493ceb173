//go:build linux

package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// mappedChanges finds the files below roots that a live process has mapped
// MAP_SHARED with PROT_WRITE, and returns them as a Delta: stores through
// such a mapping change the file without any fanotify or inotify event, so
// the journal alone would never list it. A file reached by a path that
// checks out (its device and inode are the mapping's) is listed by its
// directory, plus an inode entry when it has other links; one whose name
// is gone or cannot be verified (another mount namespace, renamed while we
// looked) is listed by device and inode, for the backup's records to place.
func mappedChanges(roots []string) (Delta, MappingScan, error) {
	var scan MappingScan
	maps, err := sharedWritableMappings(&scan)
	if err != nil || len(maps) == 0 {
		return Delta{}, scan, err
	}
	mounts, err := readMountinfo()
	if err != nil {
		return Delta{}, scan, fmt.Errorf("shared mappings: %w", err)
	}
	devs := rootDevices(mounts, roots)
	b := newDeltaBuilder(roots)
	seen := map[[2]uint64]bool{}
	for _, m := range maps {
		dev := unix.Mkdev(m.major, m.minor)
		if !devs[dev] || seen[[2]uint64{dev, m.ino}] {
			continue
		}
		seen[[2]uint64{dev, m.ino}] = true
		in, path := placeMapping(m, dev, devs)
		if path == "" {
			in, path = placeMappedFile(m, roots, dev, devs)
		}
		switch {
		case path == "" && in.Ino == 0:
			continue // a file with no name left
		case path == "":
		case underAny(filepath.Dir(path), roots):
			b.dirs[filepath.Dir(path)] = struct{}{}
		case underAny(path, roots):
			b.dirs[path] = struct{}{} // a root that is a file: listed as itself
		case in.Ino == 0:
			continue // its one name is outside the roots
		}
		if in.Ino != 0 {
			if !underAny(in.Path, roots) {
				in.Path = "" // only its number can find a link inside
			}
			b.inodes[in] = struct{}{}
		}
		scan.Files++
	}
	return b.delta(), scan, nil
}

// placeMapping says what a backup must look at for mapping m (on device
// dev): its path, when it checks out (it leads to the mapping's inode),
// and an inode entry (Ino set) when the file has other links, or when its
// name cannot be verified and only its number is left.
func placeMapping(m sharedMapping, dev uint64, devs map[uint64]bool) (in Inode, path string) {
	var st unix.Stat_t
	if m.deleted || !isCleanAbs(m.path) || unix.Lstat(m.path, &st) != nil ||
		st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != m.ino || st.Dev != dev && !devs[st.Dev] {
		// Its name is gone or is not the file's: only the number is
		// left, which the backup's records of the set place (if any
		// other name of it is there).
		return Inode{Dev: dev, Ino: m.ino, Mapped: true}, ""
	}
	// The device the kernel prints for a mapping is the superblock's; on
	// btrfs a file's st_dev is its subvolume's. Records use st_dev.
	if st.Nlink > 1 {
		in = Inode{Path: m.path, Dev: st.Dev, Ino: st.Ino}
	}
	return in, m.path
}

// placeMappedFile is placeMapping for a mapping whose printed name does
// not check out. A process in another mount namespace (a container with a
// volume bound from this filesystem) maps a file whose path there means
// nothing here: the file is opened through /proc/PID/map_files (root
// only), and its file handle opened again relative to a root on the same
// filesystem, which names it as this namespace sees it. Failing that
// (the name is gone), only the number is left.
func placeMappedFile(m sharedMapping, roots []string, dev uint64, devs map[uint64]bool) (in Inode, path string) {
	in = Inode{Dev: dev, Ino: m.ino, Mapped: true}
	if m.pid == "" {
		return in, ""
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%s/map_files/%x-%x", m.pid, m.start, m.end), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return in, ""
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Ino != m.ino {
		return in, ""
	}
	if st.Nlink == 0 {
		return Inode{}, "" // no name left: in no backup
	}
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return in, ""
	}
	for _, r := range roots {
		mfd, err := unix.Open(nearestExisting(r), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var rst unix.Stat_t
		if unix.Fstat(mfd, &rst) != nil || rst.Dev != st.Dev {
			unix.Close(mfd)
			continue
		}
		ffd, err := unix.OpenByHandleAt(mfd, h, unix.O_PATH|unix.O_CLOEXEC)
		unix.Close(mfd)
		if err != nil {
			continue
		}
		p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(ffd))
		unix.Close(ffd)
		if err == nil {
			m.path, m.deleted = p, false
			if in, path = placeMapping(m, dev, devs); path != "" {
				return in, path
			}
		}
	}
	return Inode{Dev: dev, Ino: m.ino, Mapped: true}, ""
}

// rootDevices returns the devices of the filesystems that hold the roots
// or are mounted below them (as mountinfo and stat name them): a mapping
// on any other filesystem cannot concern the roots.
func rootDevices(mounts []mountInfo, roots []string) map[uint64]bool {
	devs := map[uint64]bool{}
	for _, m := range mounts {
		for _, r := range roots {
			if within(r, m.point) || within(m.point, r) {
				devs[unix.Mkdev(m.major, m.minor)] = true
				break
			}
		}
	}
	for _, r := range roots {
		if dev, err := devOf(nearestExisting(r)); err == nil {
			devs[dev] = true
		}
	}
	return devs
}

// sharedWritableMappings reads /proc/*/maps of every process it may read
// (all of them as root, else the user's own) and returns the shared
// writable file mappings.
func sharedWritableMappings(scan *MappingScan) ([]sharedMapping, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("shared mappings: %w", err)
	}
	var out []sharedMapping
	for _, e := range ents {
		if !isPID(e.Name()) {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/maps")
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ESRCH):
			continue // exited meanwhile: its mappings are gone
		case errors.Is(err, fs.ErrPermission):
			scan.Unreadable++
			continue
		default:
			return nil, fmt.Errorf("shared mappings: read /proc/%s/maps: %w", e.Name(), err)
		}
		scan.Processes++
		pid := e.Name()
		if err := parseMaps(data, func(m sharedMapping) { m.pid = pid; out = append(out, m) }); err != nil {
			return nil, fmt.Errorf("shared mappings of process %s: %w", e.Name(), err)
		}
	}
	return out, nil
}

func isPID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
