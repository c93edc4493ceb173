package changes

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadList(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, data string
		want       []string
		err        string
	}{
		{"lines", "/a/b\n/c\n", []string{"/a/b", "/c"}, ""},
		{"crlf and blank lines", "/a\r\n\r\n\n/b", []string{"/a", "/b"}, ""},
		{"empty", "", []string{}, ""},
		{"relative", "/a\nrel/b\n", nil, "line 2: \"rel/b\" is not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			os.WriteFile(p, []byte(tt.data), 0o644)
			got, err := ReadList(p)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want one naming %s and %q", err, p, tt.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ReadList(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--changed-from") {
		t.Fatalf("missing list: %v", err)
	}
}

// TestExternalList: each path's directory and the path itself are listed
// again, once each, sorted; no cursor is kept.
func TestExternalList(t *testing.T) {
	ctx := context.Background()
	s := ExternalList("l.txt", []string{"/r/a/f", "/r/a/g", "/r/b/", "/r"})
	if c, err := s.Fence(ctx, []string{"/r"}); err != nil || !c.IsZero() {
		t.Fatalf("fence: %v %v", c, err)
	}
	d, err := s.Since(ctx, Cursor{}, Cursor{}, []string{"/r"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/r", "/r/a", "/r/a/f", "/r/a/g", "/r/b"}
	if !reflect.DeepEqual(d.Dirs, want) || d.Trees != nil || d.Inodes != nil {
		t.Fatalf("delta %+v, want dirs %q", d, want)
	}
	if s.Kind() != KindExternal || s.Describe() != "changed paths from l.txt (4 entries)" {
		t.Fatalf("kind %q, describe %q", s.Kind(), s.Describe())
	}
	empty, err := ExternalList("e", nil).Since(ctx, Cursor{}, Cursor{}, nil)
	if err != nil || empty.Dirs == nil || len(empty.Dirs) != 0 {
		t.Fatalf("an empty list must give an empty, non-nil Dirs: %+v %v", empty, err)
	}
}

// TestDeltaMergeWithin: what the fence's search for shared mappings found
// joins the journal's delta as Since would have restricted it.
func TestDeltaMergeWithin(t *testing.T) {
	journal := Delta{Dirs: []string{"/r/a", "/r/b"}, Trees: []string{"/r/t"}, Inodes: []Inode{{Path: "/r/a/x", Dev: 1, Ino: 2}}}
	mapped := Delta{
		Dirs:   []string{"/r/b", "/r/c", "/other"},
		Inodes: []Inode{{Path: "/r/c/y", Dev: 1, Ino: 3}, {Path: "/other/z", Dev: 1, Ino: 4}, {Path: "/other/w"}, {Dev: 1, Ino: 5}},
	}
	got := journal.merge(mapped.within([]string{"/r"}))
	want := Delta{
		Dirs:   []string{"/r/a", "/r/b", "/r/c"},
		Trees:  []string{"/r/t"},
		Inodes: []Inode{{Dev: 1, Ino: 4}, {Dev: 1, Ino: 5}, {Path: "/r/a/x", Dev: 1, Ino: 2}, {Path: "/r/c/y", Dev: 1, Ino: 3}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}
