package local

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/backend/backendtest"
)

func TestLocalBackend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	b, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir); err == nil {
		t.Fatal("Create on a non-empty directory succeeded")
	}
	backendtest.Run(t, b.WithoutSync(), backendtest.Options{DetectsExisting: true})
}

// TestOpenNotDirectory: a file, or a path below one, holds no repository,
// and the error says so naming the path; a missing directory does not
// exist.
func TestOpenNotDirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{file}
	if runtime.GOOS != "windows" { // there a path below a file does not exist
		paths = append(paths, filepath.Join(file, "repo"))
	}
	for _, p := range paths {
		_, err := Open(p)
		if !errors.Is(err, ErrNotDirectory) || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s): %v", p, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing directory: %v", err)
	}
	if _, err := Open(dir); err != nil {
		t.Errorf("Open of a directory: %v", err)
	}
}
