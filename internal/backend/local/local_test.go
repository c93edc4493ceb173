package local

import (
	"path/filepath"
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
