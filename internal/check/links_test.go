package check

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/repo"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// craftRepo is a repository for hand-made trees.
type craftRepo struct {
	t *testing.T
	r *repo.Repository
}

func newCraftRepo(t *testing.T) *craftRepo {
	t.Helper()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, password, repo.Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &craftRepo{t, r}
}

// data stores a data blob and returns its ID.
func (c *craftRepo) data(s string) blob.ID {
	c.t.Helper()
	id := c.r.Key().ID([]byte(s))
	if _, err := c.r.SaveBlob(context.Background(), blob.Data, id, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
	return id
}

// dir stores a tree of nodes (sorted here) and returns its directory node.
func (c *craftRepo) dir(name string, nodes ...snapshot.Node) snapshot.Node {
	c.t.Helper()
	tr := &snapshot.Tree{Nodes: nodes}
	for i := 1; i < len(tr.Nodes); i++ {
		for j := i; j > 0 && tr.Nodes[j].Name < tr.Nodes[j-1].Name; j-- {
			tr.Nodes[j], tr.Nodes[j-1] = tr.Nodes[j-1], tr.Nodes[j]
		}
	}
	id, err := snapshot.SaveTree(context.Background(), c.r, tr)
	if err != nil {
		c.t.Fatal(err)
	}
	return snapshot.Node{Name: name, Type: snapshot.Dir, Mode: 0o755, Subtree: id, Agg: tr.Totals()}
}

// snapshot flushes and stores a snapshot of root (a directory node).
func (c *craftRepo) snapshot(root snapshot.Node) {
	c.t.Helper()
	ctx := context.Background()
	if err := c.r.Flush(ctx); err != nil {
		c.t.Fatal(err)
	}
	sn := &snapshot.Snapshot{Time: time.Now(), Host: "h", Roots: []string{"/"}, Tree: root.Subtree, Totals: root.Agg}
	if err := snapshot.Save(ctx, c.r, sn); err != nil {
		c.t.Fatal(err)
	}
}

func file(name string, content string, id blob.ID, link string) snapshot.Node {
	return snapshot.Node{Name: name, Type: snapshot.File, Mode: 0o644, Size: uint64(len(content)), Content: []blob.ID{id},
		MultiLink: link != "" || strings.HasPrefix(name, "lead"), HardLink: link}
}

// TestHardLinkRecords crafts trees whose hard-link records name a file of
// other size or content, a path the snapshot lacks, a directory and a file
// not recorded as hard-linked: check names each, once however many
// snapshots share the tree, and accepts the intact records, within a
// directory and across directories.
func TestHardLinkRecords(t *testing.T) {
	c := newCraftRepo(t)
	a, b, other := c.data("aaa"), c.data("bbbb"), c.data("xyz")
	plain := file("plain", "aaa", a, "")
	dir := c.dir("dir",
		file("lead", "aaa", a, ""),
		file("ok", "aaa", a, "dir/lead"),
		file("bigger", "bbbb", b, "dir/lead"),
		file("other", "xyz", other, "dir/lead"),
		file("gone", "aaa", a, "nowhere/x"),
		file("todir", "aaa", a, "sub"),
		file("toplain", "aaa", a, "plain"),
	)
	elsewhere := c.dir("elsewhere", file("ok2", "aaa", a, "dir/lead"))
	root := c.dir("", dir, elsewhere, plain, c.dir("sub"))
	c.snapshot(root)
	c.snapshot(root) // the same root tree again: nothing reported twice
	// The same directory one level down: its records name paths this
	// snapshot does not have.
	c.snapshot(c.dir("", c.dir("moved", dir), file("lead", "aaa", a, "")))

	_, probs := run(t, c.r, Options{})
	dirTree := "tree " + dir.Subtree.Short()
	expect(t, "crafted hard links", probs, []want{
		{kind: KindHardLink, object: dirTree, path: "/dir/bigger"},
		{kind: KindHardLink, object: dirTree, path: "/dir/other"},
		{kind: KindHardLink, object: dirTree, path: "/dir/gone"},
		{kind: KindHardLink, object: dirTree, path: "/dir/todir"},
		{kind: KindHardLink, object: dirTree, path: "/dir/toplain"},
		{kind: KindHardLink, object: dirTree, path: "/moved/dir/ok"},
		{kind: KindHardLink, object: dirTree, path: "/moved/dir/bigger"},
		{kind: KindHardLink, object: dirTree, path: "/moved/dir/other"},
		{kind: KindHardLink, object: dirTree, path: "/moved/dir/gone"},
		{kind: KindHardLink, object: dirTree, path: "/moved/dir/todir"},
		{kind: KindHardLink, object: dirTree, path: "/moved/dir/toplain"},
	})
	if len(probs) != 11 {
		t.Fatalf("%d problems, want 11 (each once)", len(probs))
	}
	msgs := map[string]string{}
	for _, p := range probs {
		msgs[p.Path] = p.Err
	}
	for path, want := range map[string]string{
		"/dir/bigger":  "this entry of 4 bytes is recorded as a hard link to /dir/lead, a file of 3 bytes: restore would give it that file's content",
		"/dir/other":   "recorded as a hard link to /dir/lead, whose content differs from this entry's",
		"/dir/gone":    "recorded as a hard link to /nowhere/x, which is not in the snapshot",
		"/dir/todir":   "recorded as a hard link to /sub, which is a dir, not a file",
		"/dir/toplain": "recorded as a hard link to /plain, a file not recorded as hard-linked",
	} {
		if !strings.Contains(msgs[path], want) {
			t.Errorf("%s: %q, want %q", path, msgs[path], want)
		}
	}
}

// TestHardLinksIntact: records naming a hard-linked file of the same
// content, in the same directory and in another, check clean. (Links the
// archiver records are checked by the end-to-end round trip.)
func TestHardLinksIntact(t *testing.T) {
	c := newCraftRepo(t)
	a := c.data("aaa")
	c.snapshot(c.dir("", c.dir("x", file("lead", "aaa", a, ""), file("y", "aaa", a, "x/lead")), c.dir("z", file("w", "aaa", a, "x/lead"))))
	if _, probs := run(t, c.r, Options{}); len(probs) != 0 {
		t.Fatalf("intact hard links: %+v", probs)
	}
}
