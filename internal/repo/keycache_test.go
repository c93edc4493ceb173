package repo

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/keycache"
)

func TestKeyCache(t *testing.T) {
	ctx := context.Background()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	cheap := func() (crypto.KDFParams, error) {
		p, err := crypto.DefaultKDFParams()
		p.Time, p.Memory = 1, 8*1024
		return p, err
	}
	r, err := Init(ctx, be, []byte("pw"), Options{KDF: cheap})
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{KeyCache: true}
	if _, err := Open(ctx, be, []byte("pw"), opt); err != nil {
		t.Fatal(err)
	}
	buf, _ := backend.LoadAll(ctx, be, backend.Handle{Type: backend.Key, Name: r.KeyID()})
	var kf keyFile
	json.Unmarshal(buf, &kf)
	desc := keycache.Description(r.KeyID(), kf.Params.Salt, []byte("pw"))
	defer keycache.Forget(desc)
	if _, ok := keycache.Get(desc); !ok {
		t.Skip("no usable kernel keyring here")
	}
	// A cached key opens the repository; a wrong password still fails.
	r2, err := Open(ctx, be, []byte("pw"), opt)
	if err != nil || r2.Key().MAC != r.Key().MAC {
		t.Fatalf("open from cache: %v", err)
	}
	if _, err := Open(ctx, be, []byte("wrong"), opt); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	// A stale entry (another key under the same name) is detected by the
	// config's authentication and replaced.
	other, _ := crypto.NewRandomKey()
	stale, _ := json.Marshal(other)
	keycache.Forget(desc)
	keycache.Put(desc, stale)
	r3, err := Open(ctx, be, []byte("pw"), opt)
	if err != nil || r3.Key().MAC != r.Key().MAC {
		t.Fatalf("open with a stale cache entry: %v", err)
	}
	if got, ok := keycache.Get(desc); !ok || string(got) == string(stale) {
		t.Fatal("stale entry not replaced")
	}
}
