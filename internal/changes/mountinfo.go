package changes

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	id           int
	major, minor uint32
	root         string // path of the mount's root within its filesystem
	point        string // mount point
	fstype       string
}

// parseMountinfo parses /proc/self/mountinfo. Later lines for the same
// mount point hide earlier ones (overmounts), so callers keep the last.
func parseMountinfo(data []byte) ([]mountInfo, error) {
	var out []mountInfo
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		// id parent major:minor root point options [optional...] - fstype source superopts
		fields := strings.Fields(line)
		sep := -1
		for i, f := range fields {
			if f == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if len(fields) < 7 || sep < 0 || sep+1 >= len(fields) {
			return nil, fmt.Errorf("mountinfo: malformed line %q", line)
		}
		id, err := strconv.Atoi(fields[0])
		if err != nil {
			return nil, fmt.Errorf("mountinfo: bad id in %q", line)
		}
		maj, min, ok := strings.Cut(fields[2], ":")
		if !ok {
			return nil, fmt.Errorf("mountinfo: bad device in %q", line)
		}
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo: bad device in %q", line)
		}
		out = append(out, mountInfo{
			id: id, major: uint32(ma), minor: uint32(mi),
			root: unescapeMount(fields[3]), point: unescapeMount(fields[4]), fstype: fields[sep+1],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMount undoes the kernel's octal escapes (\040 for space etc.).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountKey identifies what is mounted at a mount point: a mount whose ID
// or device changed is another mount.
type mountKey struct {
	id           int
	major, minor uint32
	fstype       string
}

// nestedMounts returns the visible mounts whose mount point is strictly
// below one of roots (and not inside stateDir), by mount point.
func nestedMounts(mounts []mountInfo, roots []string, stateDir string) map[string]mountKey {
	out := map[string]mountKey{}
	for _, m := range mounts {
		if !isCleanAbs(m.point) || within(m.point, stateDir) {
			continue
		}
		for _, r := range roots {
			if m.point != r && within(m.point, r) {
				out[m.point] = mountKey{m.id, m.major, m.minor, m.fstype}
				break
			}
		}
	}
	// A mount below a mount point that was replaced stays in mountinfo
	// but may be hidden; keeping it is harmless (it is watched too).
	return out
}

// diffMounts lists the mount points whose mount appeared, disappeared or
// changed between prev and cur, sorted.
func diffMounts(prev, cur map[string]mountKey) []string {
	var out []string
	for p, k := range cur {
		if old, ok := prev[p]; !ok || old != k {
			out = append(out, p)
		}
	}
	for p := range prev {
		if _, ok := cur[p]; !ok {
			out = append(out, p)
		}
	}
	sortStrings(out)
	return out
}
