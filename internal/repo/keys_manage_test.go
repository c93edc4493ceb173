package repo

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/local"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/keycache"
)

// cheapKDF keeps key derivation fast in tests.
func cheapKDF() (crypto.KDFParams, error) {
	p, err := crypto.DefaultKDFParams()
	p.Time, p.Memory, p.Threads = 1, 8*1024, 1
	return p, err
}

// newKeyRepo creates a repository whose first key opens with "one".
func newKeyRepo(t *testing.T) (backend.Backend, *Repository) {
	t.Helper()
	be, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(context.Background(), be, []byte("one"), Options{KDF: cheapKDF})
	if err != nil {
		t.Fatal(err)
	}
	return be, r
}

func mustOpen(t *testing.T, be backend.Backend, password string, opt Options) *Repository {
	t.Helper()
	r, err := Open(context.Background(), be, []byte(password), opt)
	if err != nil {
		t.Fatalf("open with %q: %v", password, err)
	}
	return r
}

func readKeyFile(t *testing.T, be backend.Backend, id string) keyFile {
	t.Helper()
	kf, err := loadKeyFile(context.Background(), be, id)
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

// TestKeyAdd: an added key opens the same repository (same master key)
// with its own password, both handles list both keys with their own
// marked current, and a wrong password still fails as before.
func TestKeyAdd(t *testing.T) {
	ctx := context.Background()
	be, r := newKeyRepo(t)
	two, err := r.AddKey(ctx, []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if kf := readKeyFile(t, be, two); kf.Params.Time != 1 || kf.Params.Memory != 8*1024 {
		t.Fatalf("added key ignores the KDF override: %+v", kf.Params)
	}
	if _, err := r.AddKey(ctx, nil); err == nil {
		t.Fatal("empty password accepted")
	}
	for _, tc := range []struct {
		password string
		want     string
	}{
		{"one", r.KeyID()},
		{"two", two},
	} {
		t.Run(tc.password, func(t *testing.T) {
			h := mustOpen(t, be, tc.password, Options{})
			if h.KeyID() != tc.want || *h.Key() != *r.Key() {
				t.Fatalf("opened key %s, want %s (same master key: %v)", h.KeyID(), tc.want, *h.Key() == *r.Key())
			}
			keys, err := h.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 {
				t.Fatalf("%d keys listed, want 2", len(keys))
			}
			for _, k := range keys {
				if k.Err != nil || k.KDF != "argon2id" || k.Created.IsZero() {
					t.Fatalf("key %+v", k)
				}
				if k.Current != (k.ID == tc.want) {
					t.Fatalf("key %s marked current=%v", k.ID, k.Current)
				}
			}
		})
	}
	if _, err := Open(ctx, be, []byte("three"), Options{}); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestKeyAddDefaultKDF: without an override, added keys get the default
// (costly) parameters, not those of the key the handle was opened with.
func TestKeyAddDefaultKDF(t *testing.T) {
	be, _ := newKeyRepo(t)
	r := mustOpen(t, be, "one", Options{})
	id, err := r.AddKey(context.Background(), []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	def, _ := crypto.DefaultKDFParams()
	if kf := readKeyFile(t, be, id); kf.Params.Time != def.Time || kf.Params.Memory != def.Memory {
		t.Fatalf("params %+v, want the defaults", kf.Params)
	}
}

func TestKeyRemove(t *testing.T) {
	ctx := context.Background()
	// Names sharing a prefix, to make a prefix ambiguous.
	twin1, twin2 := "abcd"+strings.Repeat("1", 60), "abcd"+strings.Repeat("2", 60)
	for _, tc := range []struct {
		name string
		// ref picks what to remove given the handle opened with "one" and
		// the ID of the key for "two".
		ref     func(r *Repository, two string) string
		setup   func(t *testing.T, be backend.Backend, r *Repository, two string)
		wantErr error  // nil: removed
		errText string // must appear in the error
	}{
		{name: "full ID", ref: func(_ *Repository, two string) string { return two }},
		{name: "prefix", ref: func(_ *Repository, two string) string { return two[:6] }},
		{name: "upper-case prefix", ref: func(_ *Repository, two string) string { return strings.ToUpper(two[:6]) }},
		{name: "current key", ref: func(r *Repository, _ string) string { return r.KeyID()[:8] },
			wantErr: ErrKeyInUse, errText: "key passwd"},
		{name: "unknown prefix", ref: func(*Repository, string) string { return "zz99" },
			wantErr: ErrNoKey, errText: `"zz99"`},
		{name: "empty ID", ref: func(*Repository, string) string { return "" }, wantErr: ErrNoKey},
		{name: "ambiguous prefix", ref: func(*Repository, string) string { return "abcd" }, errText: `"abcd" is ambiguous`,
			setup: func(t *testing.T, be backend.Backend, r *Repository, two string) {
				buf, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.Key, Name: two})
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range []string{twin1, twin2} {
					if err := be.Save(ctx, backend.Handle{Type: backend.Key, Name: n}, buf); err != nil {
						t.Fatal(err)
					}
				}
			}},
		{name: "last key", ref: func(_ *Repository, two string) string { return two }, wantErr: ErrLastKey,
			// Another client, opened with "two", removed "one" meanwhile:
			// "two" is now the only key, though not this handle's.
			setup: func(t *testing.T, be backend.Backend, r *Repository, two string) {
				other := mustOpen(t, be, "two", Options{})
				if err := other.RemoveKey(ctx, r.KeyID()); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "last usable key", ref: func(_ *Repository, two string) string { return two }, wantErr: ErrLastKey,
			// Only a damaged key would remain besides the handle's own,
			// which another client removed.
			setup: func(t *testing.T, be backend.Backend, r *Repository, two string) {
				if err := be.Save(ctx, backend.Handle{Type: backend.Key, Name: twin1}, []byte("{not json")); err != nil {
					t.Fatal(err)
				}
				if err := be.Remove(ctx, backend.Handle{Type: backend.Key, Name: r.KeyID()}); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, r := newKeyRepo(t)
			two, err := r.AddKey(ctx, []byte("two"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, be, r, two)
			}
			before, err := r.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = r.RemoveKey(ctx, tc.ref(r, two))
			if tc.wantErr == nil && tc.errText == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Open(ctx, be, []byte("two"), Options{}); !errors.Is(err, ErrWrongPassword) {
					t.Fatalf("removed key still opens: %v", err)
				}
				mustOpen(t, be, "one", Options{})
				if after, _ := r.Keys(ctx); len(after) != len(before)-1 {
					t.Fatalf("%d keys after removing one of %d", len(after), len(before))
				}
				return
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error %v, want %v containing %q", err, tc.wantErr, tc.errText)
			}
			if after, _ := r.Keys(ctx); len(after) != len(before) {
				t.Fatalf("a refused removal changed the keys: %d before, %d after", len(before), len(after))
			}
		})
	}
}

// TestKeysDamaged: a damaged key file is listed with an error naming it,
// does not hide the others, and can be removed.
func TestKeysDamaged(t *testing.T) {
	ctx := context.Background()
	be, r := newKeyRepo(t)
	bad := strings.Repeat("e", 64)
	unknown := strings.Repeat("f", 64)
	if err := be.Save(ctx, backend.Handle{Type: backend.Key, Name: bad}, []byte("\x00garbage")); err != nil {
		t.Fatal(err)
	}
	kf := readKeyFile(t, be, r.KeyID())
	kf.KDF = "scrypt"
	buf, _ := json.Marshal(kf)
	if err := be.Save(ctx, backend.Handle{Type: backend.Key, Name: unknown}, buf); err != nil {
		t.Fatal(err)
	}
	keys, err := r.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].ID != r.KeyID() || keys[0].Err != nil || !keys[0].Current {
		t.Fatalf("keys %+v", keys)
	}
	for _, k := range keys[1:] {
		if !errors.Is(k.Err, ErrCorrupt) || !strings.Contains(k.Err.Error(), k.ID) {
			t.Fatalf("damaged key %s: error %v", k.ID, k.Err)
		}
	}
	// The good key still opens; the damaged ones can go.
	mustOpen(t, be, "one", Options{})
	for _, id := range []string{bad, unknown[:10]} {
		if err := r.RemoveKey(ctx, id); err != nil {
			t.Fatalf("remove damaged key %s: %v", id, err)
		}
	}
	if keys, _ := r.Keys(ctx); len(keys) != 1 {
		t.Fatalf("%d keys left", len(keys))
	}
}

// TestKeyChangePassword: afterwards the old password fails with
// ErrWrongPassword (with and without the kernel key cache, even if an
// entry for the old key were still there), the new one opens the same
// master key, and the handle now names the new key.
func TestKeyChangePassword(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{"no key cache", Options{}},
		{"key cache", Options{KeyCache: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, _ := newKeyRepo(t)
			opt := tc.opt
			opt.KDF = cheapKDF
			// Open twice: the second open may come from the cache.
			mustOpen(t, be, "one", opt)
			r := mustOpen(t, be, "one", opt)
			old := r.KeyID()
			oldDesc := keycache.Description(old, readKeyFile(t, be, old).Params.Salt, []byte("one"))
			defer keycache.Forget(oldDesc)
			if _, ok := keycache.Get(oldDesc); tc.opt.KeyCache && !ok {
				t.Log("no usable kernel keyring here: the cache part is not exercised")
			}
			id, err := r.ChangePassword(ctx, []byte("new"))
			if err != nil {
				t.Fatal(err)
			}
			if id == old || r.KeyID() != id {
				t.Fatalf("new key %s, old %s, handle names %s", id, old, r.KeyID())
			}
			if _, ok := keycache.Get(oldDesc); ok {
				t.Fatal("the old key's cache entry survived the password change")
			}
			for _, o := range []Options{{}, {KeyCache: true}} {
				if _, err := Open(ctx, be, []byte("one"), o); !errors.Is(err, ErrWrongPassword) {
					t.Fatalf("old password (key cache %v): %v", o.KeyCache, err)
				}
			}
			// Even a leftover cache entry for the removed key is never
			// consulted: lookups start from the key files that exist.
			if buf, err := json.Marshal(r.Key()); err == nil {
				keycache.Put(oldDesc, buf)
			}
			if _, err := Open(ctx, be, []byte("one"), Options{KeyCache: true}); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("old password with a leftover cache entry: %v", err)
			}
			if _, err := Open(ctx, be, []byte("wrong"), opt); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("wrong password: %v", err)
			}
			h := mustOpen(t, be, "new", opt)
			if h.KeyID() != id || *h.Key() != *r.Key() {
				t.Fatalf("new password opened key %s", h.KeyID())
			}
			keys, err := r.Keys(ctx)
			if err != nil || len(keys) != 1 || keys[0].ID != id || !keys[0].Current {
				t.Fatalf("keys after passwd: %+v, %v", keys, err)
			}
			// A second change from the same handle replaces the new key.
			id2, err := r.ChangePassword(ctx, []byte("newer"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(ctx, be, []byte("new"), opt); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("second change: previous password: %v", err)
			}
			if h := mustOpen(t, be, "newer", opt); h.KeyID() != id2 {
				t.Fatalf("second change: opened %s, want %s", h.KeyID(), id2)
			}
		})
	}
}

// failingKeyRemoval fails to remove key files, as a crash or a lost
// connection between the two steps of a password change would.
type failingKeyRemoval struct{ backend.Backend }

func (b failingKeyRemoval) Remove(ctx context.Context, h backend.Handle) error {
	if h.Type == backend.Key {
		return errors.New("connection lost")
	}
	return b.Backend.Remove(ctx, h)
}

// TestKeyChangePasswordInterrupted: when the old key cannot be removed,
// both passwords work and the error says so.
func TestKeyChangePasswordInterrupted(t *testing.T) {
	ctx := context.Background()
	be, _ := newKeyRepo(t)
	r := mustOpen(t, failingKeyRemoval{be}, "one", Options{KDF: cheapKDF})
	id, err := r.ChangePassword(ctx, []byte("new"))
	if err == nil || !strings.Contains(err.Error(), "both passwords work") || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("error %v", err)
	}
	if id == "" {
		t.Fatal("the new key's ID is not returned")
	}
	mustOpen(t, be, "one", Options{})
	if h := mustOpen(t, be, "new", Options{}); h.KeyID() != id {
		t.Fatalf("new password opened %s, want %s", h.KeyID(), id)
	}
}
