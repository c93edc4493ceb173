package changes

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// sharedMapping is a file mapped MAP_SHARED with PROT_WRITE by some
// process: stores through it change the file without any modify event
// (fanotify and inotify report only write(2) and friends, and a close-write
// when the last reference to the file goes, which may be days later).
type sharedMapping struct {
	// start and end are the mapping's addresses (which name it in
	// /proc/PID/map_files).
	start, end uint64
	// major and minor are the device of the file's filesystem, as the
	// kernel prints it (the superblock's device: on btrfs that is not the
	// st_dev of the file).
	major, minor uint32
	ino          uint64
	// path is the file's path as the kernel names it for the reader (it
	// may be stale, or lie in another mount namespace); deleted says the
	// kernel marked the name as removed.
	path    string
	deleted bool
	// pid is the process that maps it (set by the reader, not the
	// parser).
	pid string
}

// MappingScan says what a search for shared writable mappings saw.
type MappingScan struct {
	// Processes is the number of processes whose mappings were read;
	// Unreadable the number whose mappings this user may not read (those
	// of other users, unless running as root). Their mappings are not
	// covered: see the README and the forced-full-scan policy.
	Processes, Unreadable int
	// Files is the number of distinct shared writable mapped files that
	// may lie in the roots (found there by path, or on their filesystems
	// by an inode number whose name cannot be verified).
	Files int
}

var errMapsParse = errors.New("malformed /proc/PID/maps line")

// parseMaps calls fn for each shared writable file mapping listed in the
// content of a /proc/PID/maps file. Lines look like
//
//	7f1c2a000000-7f1c2a001000 rw-s 00000000 fd:01 1234567    /srv/db/data.mdb
//
// (address range, permissions, offset, device in hex major:minor, inode in
// decimal, then the path after padding; the kernel escapes a newline in
// the path as \012 and appends " (deleted)" to a removed name). Anonymous
// shared memory has inode 0 and is skipped, as is every mapping that is
// not both writable and shared. It never panics, whatever data holds; a
// malformed line ends the parse with an error (the mappings before it
// were reported).
func parseMaps(data []byte, fn func(sharedMapping)) error {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		m, ok, err := parseMapsLine(string(line))
		if err != nil {
			return err
		}
		if ok {
			fn(m)
		}
	}
	return nil
}

// parseMapsLine parses one line; ok reports a shared writable mapping of a
// file.
func parseMapsLine(line string) (m sharedMapping, ok bool, err error) {
	bad := func(what string) (sharedMapping, bool, error) {
		if len(line) > 120 {
			line = line[:120] + "..."
		}
		return sharedMapping{}, false, fmt.Errorf("%w (%s): %q", errMapsParse, what, line)
	}
	var f [5]string
	rest := line
	for i := range f {
		rest = strings.TrimLeft(rest, " ")
		j := strings.IndexByte(rest, ' ')
		if j < 0 {
			if i < len(f)-1 {
				return bad("too few fields")
			}
			j = len(rest)
		}
		f[i], rest = rest[:j], rest[j:]
	}
	a, b, found := strings.Cut(f[0], "-")
	if !found {
		return bad("address range")
	}
	start, err1 := strconv.ParseUint(a, 16, 64)
	end, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return bad("address range")
	}
	perms := f[1]
	if len(perms) != 4 {
		return bad("permissions")
	}
	maj, min, found := strings.Cut(f[3], ":")
	if !found {
		return bad("device")
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(min, 16, 32)
	ino, err3 := strconv.ParseUint(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return bad("device or inode")
	}
	if perms[1] != 'w' || perms[3] != 's' || ino == 0 {
		return sharedMapping{}, false, nil
	}
	path := strings.TrimLeft(rest, " ")
	m = sharedMapping{start: start, end: end, major: uint32(ma), minor: uint32(mi), ino: ino}
	if p, cut := strings.CutSuffix(path, " (deleted)"); cut {
		path, m.deleted = p, true
	}
	m.path = strings.ReplaceAll(path, `\012`, "\n")
	return m, true, nil
}
