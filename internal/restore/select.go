package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/pattern"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// selection decides which entries a restore writes, from the include and
// exclude patterns. Only the walker uses it.
type selection struct {
	include, exclude pattern.List
	// matched says which include patterns matched an entry.
	matched []bool
}

// newSelection compiles the patterns and checks that every include
// pattern naming one path (anchored, no wildcards) exists in tree, so a
// typing mistake fails before anything is written.
func newSelection(ctx context.Context, r *repo.Repository, tree blob.ID, include, exclude []string) (*selection, error) {
	// "/" names the root: everything, as it did when includes were paths.
	if slices.ContainsFunc(include, namesRoot) {
		include = nil
	}
	inc, err := pattern.NewList("--include", include, false)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	exc, err := pattern.NewList("--exclude", exclude, false)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	for _, p := range inc {
		if lit, ok := p.Literal(); ok {
			if _, err := snapshot.FindPath(ctx, r, tree, lit); err != nil {
				return nil, fmt.Errorf("restore: --include %q: %w", p, err)
			}
		}
	}
	return &selection{include: inc, exclude: exc, matched: make([]bool, len(inc))}, nil
}

// namesRoot reports whether p is "/" (or "/./", "."): the root itself.
func namesRoot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			return false
		}
	}
	return strings.TrimSpace(p) != ""
}

// all reports whether everything not excluded is restored.
func (s *selection) all() bool { return len(s.include) == 0 }

// pick decides about the entry at p (from the restore's root, with a
// leading '/'): included, it is restored with what is below it (save what
// is excluded); below, it is a directory that is not, but that may hold
// included entries. parentIncluded says its directory is included.
func (s *selection) pick(p string, isDir, parentIncluded bool) (included, below bool) {
	if s.exclude.Match(p) {
		return false, false
	}
	for i, pat := range s.include {
		if !s.matched[i] && pat.Match(p) {
			s.matched[i] = true
			included = true
		}
	}
	if included || parentIncluded || s.all() || s.include.Match(p) {
		return true, false
	}
	return false, isDir && s.include.ChildMayMatch(p)
}

// unmatched returns the include patterns that matched no entry.
func (s *selection) unmatched() []string {
	var out []string
	for i, p := range s.include {
		if !s.matched[i] {
			out = append(out, p.String())
		}
	}
	return out
}
