package dump

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/tidemark/tidemark/internal/snapshot"
)

// memSource is a repository in memory: trees and data blobs by ID.
type memSource struct {
	trees map[blob.ID]*snapshot.Tree
	data  map[blob.ID][]byte
	// fail makes LoadData fail for this blob.
	fail blob.ID
	// loading counts LoadData calls under way; peak is their maximum.
	loading, peak atomic.Int32
}

func newMemSource() *memSource {
	return &memSource{trees: map[blob.ID]*snapshot.Tree{}, data: map[blob.ID][]byte{}}
}

func (m *memSource) LoadTree(_ context.Context, id blob.ID) (*snapshot.Tree, error) {
	t, ok := m.trees[id]
	if !ok {
		return nil, fmt.Errorf("tree %s not found", id.Short())
	}
	return t, nil
}

func (m *memSource) LoadData(_ context.Context, id blob.ID) ([]byte, error) {
	n := m.loading.Add(1)
	defer m.loading.Add(-1)
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if id == m.fail {
		return nil, errors.New("damaged blob")
	}
	time.Sleep(100 * time.Microsecond) // let loads overlap
	d, ok := m.data[id]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", id.Short())
	}
	return d, nil
}

// file stores content in chunks of size chunk and returns its node.
func (m *memSource) file(name string, content []byte, chunk int) snapshot.Node {
	n := snapshot.Node{Name: name, Type: snapshot.File, Mode: 0o644, UID: 1000, GID: 100, MTime: 1_700_000_000_123_456_789, Size: uint64(len(content))}
	for off := 0; off < len(content); off += chunk {
		c := content[off:min(off+chunk, len(content))]
		id := blob.ID(sha256.Sum256(c))
		m.data[id] = c
		n.Content = append(n.Content, id)
	}
	return n
}

// dir stores a tree of nodes (sorted by the caller) and returns its node.
func (m *memSource) dir(name string, nodes ...snapshot.Node) snapshot.Node {
	t := &snapshot.Tree{Nodes: nodes}
	id := blob.ID(sha256.Sum256(t.Encode()))
	m.trees[id] = t
	return snapshot.Node{Name: name, Type: snapshot.Dir, Mode: 0o755, MTime: 1_600_000_000_000_000_001, Subtree: id}
}

func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// testTree builds, below "top": a big file in many chunks, an empty and a
// setuid file, names in invalid UTF-8 and with a newline, a hard-linked
// pair across two directories and one whose first name lies outside
// "top", a symlink, a fifo, a device and a socket.
func testTree(m *memSource) (root snapshot.Node, want map[string][]byte) {
	big := pseudoRandom(300_000, 1)
	setuid := m.file("setuid", []byte("#!/bin/sh\n"), 64)
	setuid.Mode = 0o4755
	first := m.file("first", []byte("linked content"), 64)
	first.MultiLink = true
	second := m.file("second", []byte("linked content"), 64)
	second.MultiLink, second.HardLink = true, "top/a/first"
	outside := m.file("in", []byte("first name outside"), 64)
	outside.MultiLink, outside.HardLink = true, "elsewhere/x"
	outside2 := m.file("in2", []byte("first name outside"), 64)
	outside2.MultiLink, outside2.HardLink = true, "elsewhere/x"
	withX := m.file("x.txt", []byte("xattr"), 64)
	withX.Xattrs = []snapshot.Xattr{{Name: "user.bin", Value: []byte{0, 1, 0xff}}}
	a := m.dir("a", m.file("big.bin", big, 65536), m.file("empty", nil, 64), first, setuid, withX)
	a.Mode = 0o2750
	b := m.dir("b", outside, outside2, second)
	top := m.dir("top", a, b,
		m.file("bad\xff\xfe", []byte("not UTF-8"), 64),
		snapshot.Node{Name: "dev", Type: snapshot.CharDev, Mode: 0o600, Rdev: 1<<8 | 3},
		snapshot.Node{Name: "fifo", Type: snapshot.Fifo, Mode: 0o640},
		m.file("new\nline", []byte("newline"), 64),
		snapshot.Node{Name: "sock", Type: snapshot.Socket, Mode: 0o755},
		snapshot.Node{Name: "sym", Type: snapshot.Symlink, Mode: 0o777, Target: "a/big.bin"},
	)
	want = map[string][]byte{
		"top/a/big.bin": big, "top/a/empty": {}, "top/a/first": []byte("linked content"), "top/a/setuid": []byte("#!/bin/sh\n"),
		"top/a/x.txt": []byte("xattr"), "top/b/in": []byte("first name outside"), "top/b/in2": []byte("first name outside"),
		"top/b/second": []byte("linked content"), "top/bad\xff\xfe": []byte("not UTF-8"), "top/new\nline": []byte("newline"),
	}
	return top, want
}

func TestWriteFileStreams(t *testing.T) {
	m := newMemSource()
	content := pseudoRandom(1<<20+17, 2)
	n := m.file("f", content, 4096) // 257 chunks
	var out bytes.Buffer
	written, err := WriteFile(context.Background(), m, &n, &out)
	if err != nil || written != uint64(len(content)) || !bytes.Equal(out.Bytes(), content) {
		t.Fatalf("WriteFile: %d %v, content equal %v", written, err, bytes.Equal(out.Bytes(), content))
	}
	if p := m.peak.Load(); p < 2 || p > readAhead+1 {
		t.Errorf("%d loads at once, want between 2 and %d", p, readAhead+1)
	}

	for _, tc := range []struct {
		name string
		edit func(n *snapshot.Node)
		want string
	}{
		{"damaged chunk", func(n *snapshot.Node) { m.fail = n.Content[100] }, "damaged blob"},
		{"recorded size too small", func(n *snapshot.Node) { n.Size-- }, "more than"},
		{"recorded size too large", func(n *snapshot.Node) { n.Size++ }, "recorded"},
	} {
		bad := n
		m.fail = blob.Null
		tc.edit(&bad)
		_, err := WriteFile(context.Background(), m, &bad, io.Discard)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if n := m.loading.Load(); n != 0 {
			t.Errorf("%s: %d loads still running after WriteFile returned", tc.name, n)
		}
	}
	m.fail = blob.Null
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteFile(ctx, m, &n, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTar(t *testing.T) {
	m := newMemSource()
	top, want := testTree(m)
	var skipped []string
	for _, tc := range []struct {
		name string
		root Root
		pfx  string
	}{
		{"named", Root{Node: &top, Path: "top", Name: "top"}, ""},
		{"contents at the top", Root{Node: &top, Path: "top"}, "top/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skipped = nil
			var buf bytes.Buffer
			counts, err := WriteArchive(context.Background(), m, &buf, tc.root, Options{Format: Tar, Skip: func(name, why string) { skipped = append(skipped, name+": "+why) }})
			if err != nil {
				t.Fatal(err)
			}
			name := func(s string) string { return tc.root.Name + s[len("top"):] }
			if tc.root.Name == "" {
				name = func(s string) string { return s[len(tc.pfx):] }
			}
			got := map[string][]byte{}
			headers := map[string]*tar.Header{}
			r := tar.NewReader(&buf)
			for {
				h, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				headers[h.Name] = h
				if h.Typeflag == tar.TypeReg {
					got[h.Name], _ = io.ReadAll(r)
				}
			}
			for p, content := range want {
				if !bytes.Equal(got[name(p)], content) {
					if h := headers[name(p)]; h == nil || h.Typeflag != tar.TypeLink {
						t.Errorf("%q: %q, want %q", name(p), got[name(p)], content)
					}
				}
			}
			// The later names of a hard-linked file are links to the first
			// in the archive, also when the snapshot's first name is not in it.
			for link, to := range map[string]string{"top/b/second": "top/a/first", "top/b/in2": "top/b/in"} {
				h := headers[name(link)]
				if h == nil || h.Typeflag != tar.TypeLink || h.Linkname != name(to) || h.Size != 0 {
					t.Errorf("%s: %+v, want a link to %s", link, h, name(to))
				}
			}
			checks := []struct {
				path string
				ok   func(h *tar.Header) bool
			}{
				{"top/a/", func(h *tar.Header) bool { return h.Typeflag == tar.TypeDir && h.Mode == 0o2750 }},
				{"top/a/setuid", func(h *tar.Header) bool { return h.Mode == 0o4755 && h.Uid == 1000 && h.Gid == 100 }},
				{"top/a/big.bin", func(h *tar.Header) bool { return h.ModTime.Equal(time.Unix(0, 1_700_000_000_123_456_789)) }},
				{"top/a/x.txt", func(h *tar.Header) bool { return h.PAXRecords["SCHILY.xattr.user.bin"] == "\x00\x01\xff" }},
				{"top/sym", func(h *tar.Header) bool { return h.Typeflag == tar.TypeSymlink && h.Linkname == "a/big.bin" }},
				{"top/fifo", func(h *tar.Header) bool { return h.Typeflag == tar.TypeFifo && h.Mode == 0o640 }},
				{"top/dev", func(h *tar.Header) bool { return h.Typeflag == tar.TypeChar && h.Devmajor == 1 && h.Devminor == 3 }},
			}
			for _, c := range checks {
				p := name(c.path)
				if c.path == "top/a/" {
					p = name("top/a") + "/"
				}
				if h := headers[p]; h == nil || !c.ok(h) {
					t.Errorf("%q: %+v", p, h)
				}
			}
			if _, ok := headers[name("top/sock")]; ok || len(skipped) != 1 || skipped[0] != name("top/sock")+": a tar cannot hold a socket" {
				t.Errorf("socket: skipped %q", skipped)
			}
			wantDirs := uint64(3)
			if tc.root.Name == "" {
				wantDirs = 2
			}
			if counts.Files != 8 || counts.Links != 2 || counts.Dirs != wantDirs || counts.Other != 3 || counts.Skipped != 1 {
				t.Errorf("counts %+v", counts)
			}
		})
	}
}

func TestZip(t *testing.T) {
	m := newMemSource()
	top, want := testTree(m)
	var buf bytes.Buffer
	var skipped []string
	counts, err := WriteArchive(context.Background(), m, &buf, Root{Node: &top, Path: "top", Name: "top"},
		Options{Format: Zip, Skip: func(name, why string) { skipped = append(skipped, name) }})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[f.Name] = f
	}
	read := func(name string) []byte {
		f := files[name]
		if f == nil {
			return nil
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Hard links are stored as files of their own.
	for p, content := range want {
		if got := read(p); !bytes.Equal(got, content) {
			t.Errorf("%q: %q, want %q", p, got, content)
		}
	}
	if f := files["top/sym"]; f == nil || f.Mode()&iofs.ModeSymlink == 0 || string(read("top/sym")) != "a/big.bin" {
		t.Errorf("symlink: %+v", f)
	}
	if f := files["top/a/"]; f == nil || !f.Mode().IsDir() || f.Mode()&iofs.ModeSetgid == 0 || f.Mode().Perm() != 0o750 {
		t.Errorf("directory: %+v", f)
	}
	if f := files["top/a/setuid"]; f == nil || f.Mode()&iofs.ModeSetuid == 0 || f.Mode().Perm() != 0o755 ||
		!f.Modified.Equal(time.Unix(1_700_000_000, 0)) {
		t.Errorf("setuid file: %+v", f)
	}
	if files["top/bad\xff\xfe"] == nil || !files["top/bad\xff\xfe"].NonUTF8 {
		t.Errorf("the non-UTF-8 name is not stored as it is")
	}
	if len(skipped) != 3 || counts.Skipped != 3 || counts.Files != 10 || counts.Links != 0 || counts.Other != 1 {
		t.Errorf("skipped %q, counts %+v", skipped, counts)
	}
}

func TestArchiveFails(t *testing.T) {
	m := newMemSource()
	top, _ := testTree(m)
	missing := m.dir("gone")
	delete(m.trees, missing.Subtree)
	root := m.dir("root", top, missing)
	if _, err := WriteArchive(context.Background(), m, io.Discard, Root{Node: &root}, Options{Format: Tar}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("gone: tree")) {
		t.Errorf("missing tree: %v", err)
	}
	if _, err := WriteArchive(context.Background(), m, io.Discard, Root{Node: &root}, Options{Format: "rar"}); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := ParseFormat("rar"); err == nil {
		t.Error("ParseFormat accepted rar")
	}
}
