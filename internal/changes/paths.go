package changes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// within reports whether p is root or below it. Both are absolute and clean.
func within(p, root string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || (strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/')
}

// overlaps reports whether one of a and b contains the other.
func overlaps(a, b string) bool { return within(a, b) || within(b, a) }

// rootOf returns the root that p is at or below.
func rootOf(p string, roots []string) (string, bool) {
	for _, r := range roots {
		if within(p, r) {
			return r, true
		}
	}
	return "", false
}

func underAny(p string, roots []string) bool {
	_, ok := rootOf(p, roots)
	return ok
}

func overlapsAny(p string, roots []string) bool {
	for _, r := range roots {
		if overlaps(p, r) {
			return true
		}
	}
	return false
}

// NormalizeRoots makes roots absolute and clean and resolves symlinks in the
// existing part of their parent directories (as the paths the kernel
// reports are), keeps the last component as it is, drops duplicates and
// roots inside other roots, and sorts them. Roots need not exist. The
// watcher and the backup share it, so both name the same roots alike.
func NormalizeRoots(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to watch")
	}
	var out []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", p, err)
		}
		if abs != "/" {
			dir, err := resolveExisting(filepath.Dir(abs))
			if err != nil {
				return nil, fmt.Errorf("path %s: %w", p, err)
			}
			abs = filepath.Join(dir, filepath.Base(abs))
		}
		out = append(out, abs)
	}
	return pruneNested(out), nil
}

// resolveExisting resolves symlinks in the longest existing prefix of p and
// appends the rest unchanged.
func resolveExisting(p string) (string, error) {
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// pruneNested sorts, dedups and drops paths inside others.
func pruneNested(paths []string) []string {
	ps := append([]string(nil), paths...)
	sort.Strings(ps)
	var out []string
next:
	for _, p := range ps {
		// Sorting may put "/a-b" between "/a" and "/a/c", so compare with
		// every kept path, not only the last.
		for _, q := range out {
			if within(p, q) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// cleanRoots checks roots given by a reader: absolute and clean.
func cleanRoots(roots []string) ([]string, error) {
	if len(roots) == 0 {
		return nil, errors.New("no roots")
	}
	for _, r := range roots {
		if !isCleanAbs(r) {
			return nil, fmt.Errorf("root %q is not an absolute, clean path", r)
		}
	}
	return pruneNested(roots), nil
}

// nearestExisting returns p or its nearest existing ancestor.
func nearestExisting(p string) string {
	for {
		if _, err := os.Lstat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}
