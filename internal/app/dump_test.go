package app_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/gentree"
	"github.com/tidemark/tidemark/internal/restore"
)

func TestDumpAndRestoreSubpath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	big := gentree.RandomBytes(3<<20+5, 7)
	write(t, filepath.Join(src, "big.bin"), string(big))
	write(t, filepath.Join(src, "sub/a.txt"), "alpha")
	write(t, filepath.Join(src, "sub/deeper/b.txt"), "bravo")
	if err := os.Symlink("big.bin", filepath.Join(src, "sym")); err != nil {
		t.Fatal(err)
	}
	r, err := app.Init(ctx, options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Backup(ctx, app.BackupOptions{Paths: []string{src}, NoJournal: true}); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	var formats []string
	open := func(format string) (io.Writer, error) {
		formats = append(formats, format)
		buf.Reset()
		return &buf, nil
	}
	res, err := r.Dump(ctx, app.DumpOptions{Snapshot: "latest", Path: src + "/big.bin"}, open, nil)
	if err != nil || res.Format != app.DumpFile || res.Bytes != uint64(len(big)) || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("dump a file: %+v %v (%d bytes)", res, err, buf.Len())
	}

	tarNames := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		}
	}
	rel := strings.TrimPrefix(src, "/")
	res, err = r.Dump(ctx, app.DumpOptions{Snapshot: "latest", Path: src + "/sub"}, open, nil)
	if err != nil || res.Format != "tar" || res.Files != 2 || res.Dirs != 2 {
		t.Fatalf("dump a directory: %+v %v", res, err)
	}
	if got := tarNames(); len(got) != 4 || got[rel+"/sub/a.txt"] != "alpha" || got[rel+"/sub/deeper/b.txt"] != "bravo" {
		t.Fatalf("tar of %s/sub: %q", src, got)
	}
	// SNAPSHOT:DIR puts DIR's contents at the top.
	res, err = r.Dump(ctx, app.DumpOptions{Snapshot: "latest:" + src + "/sub", Path: "/"}, open, nil)
	if err != nil || res.Path != src+"/sub" {
		t.Fatalf("dump latest:sub /: %+v %v", res, err)
	}
	if got := tarNames(); len(got) != 3 || got["a.txt"] != "alpha" || got["deeper/b.txt"] != "bravo" {
		t.Fatalf("tar of latest:sub: %q", got)
	}

	formats = nil
	for _, tc := range []struct {
		opt  app.DumpOptions
		want string
	}{
		{app.DumpOptions{Snapshot: "latest", Path: src + "/nope"}, "not found in snapshot"},
		{app.DumpOptions{Snapshot: "latest", Path: src + "/sym"}, "is a symlink to big.bin"},
		{app.DumpOptions{Snapshot: "latest:" + src + "/big.bin", Path: "/"}, "is a file, not a directory"},
		{app.DumpOptions{Snapshot: "latest", Path: src, Archive: "rar"}, `--archive "rar": want tar or zip`},
		{app.DumpOptions{Snapshot: "0000", Path: src}, "no matching snapshot"},
	} {
		if _, err := r.Dump(ctx, tc.opt, open, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opt, err, tc.want)
		}
	}
	if len(formats) != 0 {
		t.Errorf("output opened for failed dumps: %q", formats)
	}

	// Restore SNAPSHOT:DIR, dry first.
	target := filepath.Join(dir, "restore")
	var listed []string
	dry, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest:" + src + "/sub", Options: restore.Options{Target: target, DryRun: true,
		Report: func(e restore.Entry) {
			listed = append(listed, e.Action.String()+" "+strings.TrimPrefix(e.Path, target))
		}}})
	if err != nil || !dry.DryRun || dry.Files != 2 || dry.Subpath != src+"/sub" {
		t.Fatalf("dry restore: %+v %v", dry, err)
	}
	slices.Sort(listed)
	if want := []string{"restore /a.txt", "restore /deeper", "restore /deeper/b.txt"}; !slices.Equal(listed, want) {
		t.Errorf("dry run listed %q, want %q", listed, want)
	}
	if _, err := os.Stat(target); err == nil {
		t.Fatal("the dry run created the target")
	}
	res2, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest:" + src + "/sub", Options: restore.Options{Target: target, Verify: true}})
	if err != nil || res2.Files != 2 || res2.Verified != 2 || len(res2.Mismatches) != 0 || res2.Errors == nil {
		t.Fatalf("restore latest:sub: %+v %v", res2, err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "deeper/b.txt")); err != nil || string(b) != "bravo" {
		t.Fatalf("restored %q %v", b, err)
	}
	if _, err := r.Restore(ctx, app.RestoreOptions{Snapshot: "latest:/x", Options: restore.Options{Target: target, Subpath: "/y"}}); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("two subpaths: %v", err)
	}
}
