package scan

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Excluder decides which paths a backup leaves out.
//
// A pattern without a slash matches the name of an entry at any depth
// (`*.tmp`, `node_modules`). A pattern with a slash matches the absolute
// path (`/home/*/.cache`); `**` matches any number of directories
// (`/srv/**/logs`). Excluding a directory excludes everything below it.
type Excluder struct {
	names []string
	paths []string
}

// NewExcluder validates and compiles patterns.
func NewExcluder(patterns []string) (*Excluder, error) {
	e := &Excluder{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !doublestar.ValidatePattern(p) {
			return nil, fmt.Errorf("invalid exclude pattern %q", p)
		}
		if strings.Contains(p, "/") {
			e.paths = append(e.paths, path.Clean(p))
		} else {
			e.names = append(e.names, p)
		}
	}
	return e, nil
}

// ReadPatternFile reads patterns from a file, one per line; blank lines and
// lines starting with # are ignored.
func ReadPatternFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read exclude file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read exclude file %s: %w", name, err)
	}
	return out, nil
}

// Empty reports whether no pattern is set.
func (e *Excluder) Empty() bool { return e == nil || len(e.names)+len(e.paths) == 0 }

// Excluded reports whether the entry name at absolute path p is excluded.
func (e *Excluder) Excluded(p, name string) bool {
	if e == nil {
		return false
	}
	for _, pat := range e.names {
		if ok, _ := doublestar.Match(pat, name); ok {
			return true
		}
	}
	for _, pat := range e.paths {
		if ok, _ := doublestar.Match(pat, p); ok {
			return true
		}
	}
	return false
}
