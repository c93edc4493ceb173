package snapshot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// TestFilterMatch: restic's semantics. Hosts: any of them. Paths: each one
// of the roots, exactly. Tags: a comma list needs all its tags, repeated
// lists are alternatives, "" selects untagged snapshots.
func TestFilterMatch(t *testing.T) {
	etc := &snapshot.Snapshot{Host: "a", Roots: []string{"/etc"}, Tags: []string{"daily", "system"}}
	both := &snapshot.Snapshot{Host: "b", Roots: []string{"/etc", "/usr"}}
	sub := &snapshot.Snapshot{Host: "a", Roots: []string{"/etc/ssh"}, Tags: []string{"daily"}}
	tags := func(lists ...string) [][]string {
		var out [][]string
		for _, l := range lists {
			out = append(out, snapshot.ParseTagList(l))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    snapshot.Filter
		want [3]bool // etc, both, sub
	}{
		{"empty", snapshot.Filter{}, [3]bool{true, true, true}},
		{"host", snapshot.Filter{Hosts: []string{"a"}}, [3]bool{true, false, true}},
		{"hosts are alternatives", snapshot.Filter{Hosts: []string{"a", "b"}}, [3]bool{true, true, true}},
		{"path is exact", snapshot.Filter{Paths: []string{"/etc"}}, [3]bool{true, true, false}},
		{"paths are all needed", snapshot.Filter{Paths: []string{"/etc", "/usr"}}, [3]bool{false, true, false}},
		{"no prefix match", snapshot.Filter{Paths: []string{"/"}}, [3]bool{false, false, false}},
		{"tag", snapshot.Filter{Tags: tags("daily")}, [3]bool{true, false, true}},
		{"tag list needs every tag", snapshot.Filter{Tags: tags("daily,system")}, [3]bool{true, false, false}},
		{"repeated tags are alternatives", snapshot.Filter{Tags: tags("system", "nope")}, [3]bool{true, false, false}},
		{"untagged", snapshot.Filter{Tags: tags("")}, [3]bool{false, true, false}},
		{"all parts apply", snapshot.Filter{Hosts: []string{"a"}, Paths: []string{"/etc"}, Tags: tags("daily")}, [3]bool{true, false, false}},
	} {
		for i, sn := range []*snapshot.Snapshot{etc, both, sub} {
			if got := tc.f.Match(sn); got != tc.want[i] {
				t.Errorf("%s: %s matches %v = %v, want %v", tc.name, tc.f, sn.Roots, got, tc.want[i])
			}
		}
	}
	if got := (snapshot.Filter{Hosts: []string{"a b"}, Paths: []string{"/etc"}, Tags: tags("x,y")}).String(); got != `--host "a b" --path /etc --tag x,y` {
		t.Errorf("String() = %s", got)
	}
	if got := snapshot.ParseTagList(" a, ,b "); strings.Join(got, "|") != "a|b" {
		t.Errorf("ParseTagList = %q", got)
	}
}

// TestLatestWithinFilter: with two backup sets, "latest" with a path is the
// newest snapshot of that set, not whichever ran last; an ID outside the
// filter is refused; a filter nothing matches says so.
func TestLatestWithinFilter(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, _, _ := newRepo(t)
	save := func(tm time.Time, root string) blob.ID {
		sn := &snapshot.Snapshot{Time: tm, Host: "h", Roots: []string{root}}
		if err := snapshot.Save(ctx, r, sn); err != nil {
			t.Fatal(err)
		}
		return sn.ID
	}
	etc1 := save(t0, "/etc")
	etc2 := save(t0.Add(time.Hour), "/etc")
	usr := save(t0.Add(2*time.Hour), "/usr")

	etc := snapshot.Filter{Paths: []string{"/etc"}}
	if sn, _, err := snapshot.Find(ctx, r, "latest", etc); err != nil || sn.ID != etc2 {
		t.Fatalf("latest --path /etc: %v %v", sn, err)
	}
	if sn, _, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{}); err != nil || sn.ID != usr {
		t.Fatalf("latest: %v %v", sn, err)
	}
	if sn, _, err := snapshot.Find(ctx, r, etc1.String()[:8], etc); err != nil || sn.ID != etc1 {
		t.Fatalf("ID within the filter: %v %v", sn, err)
	}
	_, _, err := snapshot.Find(ctx, r, usr.String()[:8], etc)
	if !errors.Is(err, snapshot.ErrNoSnapshot) || !strings.Contains(err.Error(), "does not match --path /etc") {
		t.Fatalf("ID outside the filter: %v", err)
	}
	_, _, err = snapshot.Find(ctx, r, "latest", snapshot.Filter{Hosts: []string{"other"}})
	if !errors.Is(err, snapshot.ErrNoSnapshot) || !strings.Contains(err.Error(), "latest (--host other)") {
		t.Fatalf("latest with a filter nothing matches: %v", err)
	}
}

// TestGroupBy: keys hold only the fields grouped by, tags sorted; String
// is forget's group name.
func TestGroupBy(t *testing.T) {
	sn := &snapshot.Snapshot{Host: "h", Roots: []string{"/a", "/b"}, Tags: []string{"y", "x"}}
	for _, tc := range []struct{ spec, want string }{
		{"host,paths", "host=h paths=/a:/b"},
		{"tags", "tags=x:y"},
		{"host,path,tag", "host=h paths=/a:/b tags=x:y"},
		{"", ""},
	} {
		g, err := snapshot.ParseGroupBy(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.Key(sn).String(); got != tc.want {
			t.Errorf("--group-by %q: key %q, want %q", tc.spec, got, tc.want)
		}
	}
	if _, err := snapshot.ParseGroupBy("host,user"); err == nil || !strings.Contains(err.Error(), `unknown field "user"`) {
		t.Errorf("unknown field: %v", err)
	}
	// An empty host still names its group.
	g, _ := snapshot.ParseGroupBy("host")
	if got := g.Key(&snapshot.Snapshot{}).String(); got != "host=" {
		t.Errorf("empty host: key %q", got)
	}
}
