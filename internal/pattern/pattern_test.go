package pattern

import (
	"path"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		fold    bool
		path    string
		want    bool
	}{
		// A name pattern matches the last component at any depth.
		{"*.odt", false, "/home/me/report.odt", true},
		{"*.odt", false, "/report.odt", true},
		{"*.odt", false, "/home/me/report.odt.bak", false},
		{"report.odt", false, "/a/b/report.odt", true},
		{"report.odt", false, "/a/report.odt/inner", false}, // the entry itself, not what is below it
		{"?eport.odt", false, "/x/report.odt", true},
		{"[rs]eport.*", false, "/x/seport.txt", true},
		{"[^r]eport.*", false, "/x/report.txt", false}, // path.Match negates with ^, not !
		{"\\*", false, "/x/*", true},
		{"\\*", false, "/x/a", false},
		// Case.
		{"*.ODT", false, "/x/a.odt", false},
		{"*.ODT", true, "/x/a.odt", true},
		{"Ä*", true, "/x/äpfel", true},
		{"*\xff*", true, "/x/a\xffB", true},
		{"*\xff*", true, "/x/a\xfeB", false},
		// Patterns with '/' match the end of the path...
		{"work/*.odt", false, "/home/me/work/a.odt", true},
		{"work/*.odt", false, "/home/me/work/sub/a.odt", false},
		{"me/work", false, "/home/me/work", true},
		{"me/work", false, "/me/work", true},
		{"me/work", false, "/home/mework", false},
		// ...unless anchored, when they match all of it.
		{"/home/*/work", false, "/home/me/work", true},
		{"/home/*/work", false, "/x/home/me/work", false},
		{"/home/*/work", false, "/home/me/work/a", false},
		{"/home", false, "home", true}, // a leading slash on the path is optional
		{"/home/", false, "/home", true},
		{"/./home//me", false, "/home/me", true},
		// "**" matches any number of components, none included.
		{"/srv/**/logs", false, "/srv/logs", true},
		{"/srv/**/logs", false, "/srv/a/b/c/logs", true},
		{"/srv/**/logs", false, "/srv/a/b/c/logs/x", false},
		{"/srv/**", false, "/srv/a/b", true},
		{"/srv/**", false, "/srv", true},
		{"/srv/**", false, "/srv2", false},
		{"a/**/b", false, "/x/a/b", true},
		{"a/**/b", false, "/x/a/y/z/b", true},
		{"**/b", false, "/b", true},
		{"**", false, "/anything/at/all", true},
		{"/**/**/z", false, "/a/z", true},
		// Odd names.
		{"*\n*", false, "/dir/a\nb", true},
		{"bad\xff*", false, "/dir/bad\xff\xfename", true},
	} {
		p, err := New(tc.pattern, tc.fold)
		if err != nil {
			t.Fatalf("New(%q): %v", tc.pattern, err)
		}
		if got := p.Match(tc.path); got != tc.want {
			t.Errorf("%q (fold %v) on %q: %v, want %v", tc.pattern, tc.fold, tc.path, got, tc.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"", "empty pattern"},
		{"  ", "empty pattern"},
		{"/", "names no entry"},
		{"/./", "names no entry"},
		{"a/../b", `".." is not allowed`},
		{"[abc", "malformed component"},
		{"/x/a\\", "malformed component"},
		{"a\x00b", "NUL"},
	} {
		if _, err := New(tc.pattern, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q): %v, want %q", tc.pattern, err, tc.want)
		}
	}
	if _, err := NewList("--include", []string{"ok", "[bad"}, false); err == nil || !strings.HasPrefix(err.Error(), "--include: pattern \"[bad\"") {
		t.Errorf("NewList error %v does not name the option and the pattern", err)
	}
}

func TestChildMayMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, dir string
		want         bool
	}{
		{"*.odt", "/anything", true},
		{"a/b", "/x", true},
		{"/home/me/work", "/home", true},
		{"/home/me/work", "/home/me", true},
		{"/home/me/work", "/home/me/work", false}, // the match is the dir itself
		{"/home/me/work", "/usr", false},
		{"/home/*/work", "/home/you", true},
		{"/home/*/work", "/home/you/play", false},
		{"/srv/**/logs", "/srv/a/b", true},
		{"/srv/**", "/srv/a", true},
		{"/srv/**", "/usr", false},
		{"/srv/**/logs", "/srv/a/logs", true}, // logs/x/logs could match
	} {
		p, err := New(tc.pattern, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.ChildMayMatch(tc.dir); got != tc.want {
			t.Errorf("%q below %q: %v, want %v", tc.pattern, tc.dir, got, tc.want)
		}
	}
}

func TestLiteralAndPathDependent(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		literal string
		pathDep bool
	}{
		{"/home/me/work", "/home/me/work", true},
		{"/home//me/", "/home/me", true},
		{"/home/*/work", "", true},
		{"/a/\\*", "", true},
		{"home/me", "", true},
		{"*.odt", "", false},
		{"report.odt", "", false},
		{"**", "", true},
	} {
		p, err := New(tc.pattern, false)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := p.Literal()
		if lit != tc.literal || ok != (tc.literal != "") {
			t.Errorf("Literal(%q) = %q %v, want %q", tc.pattern, lit, ok, tc.literal)
		}
		if got := (List{p}).PathDependent(); got != tc.pathDep {
			t.Errorf("PathDependent(%q) = %v", tc.pattern, got)
		}
	}
}

// oracle matches the way restic's filter does, by brute force: every "**"
// is expanded into each possible number of "*" components, the pattern
// joined again, and path.Match run on the joined end of the path. It is
// slow and obviously right, for the property test below. Its generator
// leaves out negated classes, which path.Match lets match a '/'.
func oracle(parts []string, anchored bool, names []string) bool {
	var try func(i int, acc []string) bool
	try = func(i int, acc []string) bool {
		if len(acc) > len(names) {
			return false
		}
		if i == len(parts) {
			if anchored && len(acc) != len(names) {
				return false
			}
			tail := names[len(names)-len(acc):]
			ok, _ := path.Match(strings.Join(acc, "/"), strings.Join(tail, "/"))
			return ok
		}
		if parts[i] != anyDepth {
			return try(i+1, append(acc[:len(acc):len(acc)], parts[i]))
		}
		for k := 0; len(acc)+k <= len(names); k++ {
			stars := acc[:len(acc):len(acc)]
			for range k {
				stars = append(stars, "*")
			}
			if try(i+1, stars) {
				return true
			}
		}
		return false
	}
	return try(0, nil)
}

func TestMatchProperty(t *testing.T) {
	names := rapid.SampledFrom([]string{"a", "b", "ab", "ba", "aa", ".a", "B", "a.b"})
	parts := rapid.SampledFrom([]string{"a", "b", "*", "?", "a*", "*b", "[ab]", "?b", "**", "[a-b]*", "B"})
	rapid.Check(t, func(t *rapid.T) {
		ps := rapid.SliceOfN(parts, 1, 4).Draw(t, "parts")
		anchored := rapid.Bool().Draw(t, "anchored")
		fold := rapid.Bool().Draw(t, "fold")
		ns := rapid.SliceOfN(names, 0, 6).Draw(t, "names")
		text := strings.Join(ps, "/")
		if anchored {
			text = "/" + text
		}
		p, err := New(text, fold)
		if err != nil {
			t.Fatalf("New(%q): %v", text, err)
		}
		lower := func(ss []string) []string {
			if !fold {
				return ss
			}
			out := make([]string, len(ss))
			for i, s := range ss {
				out[i] = strings.ToLower(s)
			}
			return out
		}
		full := "/" + strings.Join(ns, "/")
		want := len(ns) > 0 && oracle(p.parts, anchored, lower(ns))
		if got := p.Match(full); got != want {
			t.Fatalf("%q on %q: Match %v, oracle %v", text, full, got, want)
		}
		// ChildMayMatch never rules out a directory with a match below.
		for i := range ns {
			dir := "/" + strings.Join(ns[:i], "/")
			if want && !p.ChildMayMatch(dir) {
				t.Fatalf("%q: ChildMayMatch(%q) false, but %q matches", text, dir, full)
			}
		}
	})
}

func BenchmarkMatchName(b *testing.B) {
	p, _ := New("*.odt", false)
	for b.Loop() {
		p.Match("/home/me/work/projects/2024/report-final.odt")
	}
}
