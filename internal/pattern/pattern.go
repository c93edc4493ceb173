// Package pattern matches snapshot paths against the patterns users give
// to find and restore (--include, --exclude), with restic's rules.
//
// A pattern is split at '/' into components, and each component is
// matched against one path component with path.Match: '*' matches any
// run of characters, '?' one character, '[a-z]' a class ('[^a-z]' its
// complement), '\' escapes. path.Match rather than filepath.Match because snapshot paths are
// slash-separated on every operating system (filepath.Match on Windows
// would split at '\' and lose escaping). A component "**" matches any
// number of path components, none included.
//
// A pattern that starts with '/' is anchored: it must match the whole
// path, from the snapshot's root ("/home/*/work"). Any other pattern
// matches the end of a path: one without '/' matches the entry's name
// ("*.odt", "report.odt") at any depth, and "work/*.odt" matches a .odt
// file in any directory called work. Paths are absolute snapshot paths
// ("/home/me/work/report.odt"); names are compared byte for byte (names
// in invalid UTF-8 included) unless case is ignored.
package pattern

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// anyDepth is the component that matches any number of path components.
const anyDepth = "**"

// Pattern is one compiled pattern.
type Pattern struct {
	text     string
	parts    []string
	anchored bool
	fold     bool
}

// New compiles s. With ignoreCase, letters match whatever their case
// (Unicode simple folding to lower case, on both sides). Empty patterns,
// ".." components and malformed classes are refused.
func New(s string, ignoreCase bool) (*Pattern, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty pattern")
	}
	if strings.ContainsRune(s, 0) {
		return nil, fmt.Errorf("pattern %q contains NUL", s)
	}
	p := &Pattern{text: s, anchored: strings.HasPrefix(s, "/"), fold: ignoreCase}
	for _, c := range strings.Split(s, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			// Cleaning it away would silently match something else than
			// what was written; it most likely is a mistake.
			return nil, fmt.Errorf("pattern %q: \"..\" is not allowed", s)
		}
		if ignoreCase {
			c = fold(c)
		}
		if _, err := path.Match(c, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: malformed component %q (an unclosed '[' or a trailing '\\')", s, c)
		}
		if c == anyDepth && len(p.parts) > 0 && p.parts[len(p.parts)-1] == anyDepth {
			continue // "**/**" is "**"
		}
		p.parts = append(p.parts, c)
	}
	if len(p.parts) == 0 {
		return nil, fmt.Errorf("pattern %q names no entry", s)
	}
	return p, nil
}

// String returns the pattern as given.
func (p *Pattern) String() string { return p.text }

// Literal returns the path an anchored pattern without wildcards names
// ("/home/me/work"), and whether it is one: such a pattern matches one
// path, so a caller can check that it exists before doing anything.
func (p *Pattern) Literal() (string, bool) {
	if !p.anchored || p.fold {
		return "", false
	}
	for _, c := range p.parts {
		if strings.ContainsAny(c, `*?[\`) {
			return "", false
		}
	}
	return "/" + strings.Join(p.parts, "/"), true
}

// Match reports whether the entry at path (slash-separated, from the
// snapshot's root; a leading '/' is optional) matches the pattern. Only
// the entry itself is judged: "/a/b" does not match the path "/a/b/c".
// The root itself matches nothing.
func (p *Pattern) Match(path string) bool {
	if strings.Trim(path, "/") == "" {
		return false // the root is no entry
	}
	if !p.anchored && len(p.parts) == 1 && p.parts[0] != anyDepth {
		// The common case (a name pattern): only the last component
		// counts, and splitting the path would cost an allocation.
		return p.matchOne(p.parts[0], path[strings.LastIndexByte(path, '/')+1:])
	}
	st := p.run(path)
	return st.has(len(p.parts))
}

// ChildMayMatch reports whether an entry below the directory at dir could
// match (conservatively: true when unsure). A walk uses it to skip
// subtrees: only anchored patterns ever rule one out.
func (p *Pattern) ChildMayMatch(dir string) bool {
	if !p.anchored {
		return true
	}
	st := p.run(dir)
	for i := range st.reached {
		if !st.reached[i] {
			continue
		}
		// Parts remain to be matched below dir, or the last one is "**",
		// which goes on matching.
		if i < len(p.parts) || p.parts[len(p.parts)-1] == anyDepth {
			return true
		}
	}
	return false
}

// state is the set of pattern positions reached after some path
// components: reached[i] says parts[:i] matched them all. The pattern is
// simulated as a small automaton, so "**" costs no backtracking.
type state struct {
	reached []bool
}

func (s state) has(i int) bool { return s.reached[i] }

// run feeds the components of path through the pattern.
func (p *Pattern) run(path string) state {
	n := len(p.parts)
	cur, next := make([]bool, n+1), make([]bool, n+1)
	cur[0] = true
	p.closure(cur)
	for path != "" {
		var name string
		if i := strings.IndexByte(path, '/'); i >= 0 {
			name, path = path[:i], path[i+1:]
		} else {
			name, path = path, ""
		}
		if name == "" {
			continue
		}
		clear(next)
		for i, ok := range cur {
			if !ok || i == n {
				continue
			}
			switch part := p.parts[i]; {
			case part == anyDepth:
				next[i] = true // consumes this component and stays
			case p.matchOne(part, name):
				next[i+1] = true
			}
		}
		if !p.anchored {
			// An implicit leading "**": the match may start at any depth.
			next[0] = true
		}
		p.closure(next)
		cur, next = next, cur
	}
	return state{reached: cur}
}

// closure lets every "**" reached also match no component.
func (p *Pattern) closure(reached []bool) {
	for i, part := range p.parts {
		if reached[i] && part == anyDepth {
			reached[i+1] = true
		}
	}
}

func (p *Pattern) matchOne(part, name string) bool {
	if p.fold {
		name = fold(name)
	}
	ok, _ := path.Match(part, name) // validated in New
	return ok
}

// fold lowers the letters of s, leaving bytes that are not UTF-8 as they
// are (strings.ToLower would turn each into U+FFFD, making different
// names equal).
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(s[i])
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
		i += size
	}
	return b.String()
}

// List is a set of patterns; a path matches the list when it matches any.
type List []*Pattern

// NewList compiles patterns; what names the option for errors
// ("--include").
func NewList(what string, patterns []string, ignoreCase bool) (List, error) {
	var l List
	for _, s := range patterns {
		p, err := New(s, ignoreCase)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		l = append(l, p)
	}
	return l, nil
}

// Match reports whether path matches any pattern of the list.
func (l List) Match(path string) bool {
	for _, p := range l {
		if p.Match(path) {
			return true
		}
	}
	return false
}

// ChildMayMatch reports whether an entry below dir could match any
// pattern of the list.
func (l List) ChildMayMatch(dir string) bool {
	for _, p := range l {
		if p.ChildMayMatch(dir) {
			return true
		}
	}
	return false
}

// PathDependent reports whether matching needs more than an entry's name:
// some pattern has more than one component or is anchored. Without such
// patterns, whether a subtree holds matches depends on its contents alone.
func (l List) PathDependent() bool {
	for _, p := range l {
		if p.anchored || len(p.parts) != 1 || p.parts[0] == anyDepth {
			return true
		}
	}
	return false
}
