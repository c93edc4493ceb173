package repo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/crypto"
	"github.com/tidemark/tidemark/internal/keycache"
)

// ErrWrongPassword is returned when no key file opens with the password.
var ErrWrongPassword = errors.New("wrong password, or no key matches it")

// keyFile is the JSON stored under keys/: the master key sealed with a
// password-derived key.
type keyFile struct {
	Created  time.Time        `json:"created"`
	Host     string           `json:"host"`
	Username string           `json:"username,omitempty"`
	KDF      string           `json:"kdf"`
	Params   crypto.KDFParams `json:"params"`
	Data     []byte           `json:"data"`
}

// kdfParamsFunc returns the argon2 parameters for a new key; tests use
// cheap ones (see Options.KDF).
type kdfParamsFunc func() (crypto.KDFParams, error)

func writeKey(ctx context.Context, be backend.Backend, master *crypto.Key, password []byte, params kdfParamsFunc) (string, error) {
	p, err := params()
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(master)
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	kf := keyFile{Created: time.Now().UTC(), Host: host, Username: os.Getenv("USER"), KDF: "argon2id", Params: p,
		Data: crypto.SealWith(crypto.WrappingKey(password, p), plain)}
	buf, err := json.Marshal(kf)
	if err != nil {
		return "", err
	}
	var rnd [32]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(rnd[:], buf...))
	name := hex.EncodeToString(sum[:])
	if err := be.Save(ctx, backend.Handle{Type: backend.Key, Name: name}, buf); err != nil {
		return "", fmt.Errorf("save key: %w", err)
	}
	return name, nil
}

// openKey finds the key file the password unlocks. With useCache, a key
// unlocked recently (by this user) comes from the kernel keyring instead of
// a new argon2 derivation; the caller verifies it and calls back with
// useCache false if it does not fit. cacheDesc names the entry to fill
// once the key is verified.
func openKey(ctx context.Context, be backend.Backend, password []byte, useCache bool) (key *crypto.Key, name string, cacheDesc string, fromCache bool, err error) {
	var names []string
	if err := be.List(ctx, backend.Key, func(n string, _ int64) error {
		names = append(names, n)
		return nil
	}); err != nil {
		return nil, "", "", false, fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, "", "", false, fmt.Errorf("repository %s has no key files: %w", be.Location(), ErrCorrupt)
	}
	var lastErr error
	tried := 0
	for _, n := range names {
		kf, err := loadKeyFile(ctx, be, n)
		if err != nil {
			lastErr = err
			continue
		}
		tried++
		desc := keycache.Description(n, kf.Params.Salt, password)
		if useCache {
			if plain, ok := keycache.Get(desc); ok {
				var k crypto.Key
				if json.Unmarshal(plain, &k) == nil {
					return &k, n, desc, true, nil
				}
			}
		}
		k, err := kf.unwrap(password)
		if errors.Is(err, ErrWrongPassword) {
			continue // another key may match
		}
		if err != nil {
			return nil, "", "", false, fmt.Errorf("key %s: %w", n, err)
		}
		return k, n, desc, false, nil
	}
	// A key file that could not be read (rather than damaged) may be the
	// one that fits; and if none could be tried, "wrong password" would
	// mislead.
	if lastErr != nil && (tried == 0 || !errors.Is(lastErr, ErrCorrupt)) {
		return nil, "", "", false, lastErr
	}
	return nil, "", "", false, ErrWrongPassword
}

// ErrKeyInUse is returned when removing the key a repository handle was
// opened with.
var ErrKeyInUse = errors.New("the key is in use")

// ErrLastKey is returned when removing a key would leave the repository
// without one that opens it.
var ErrLastKey = errors.New("it is the repository's last usable key")

// ErrNoKey is returned when a key ID or prefix matches no key file.
var ErrNoKey = errors.New("no such key")

// KeyInfo describes one key file of a repository.
type KeyInfo struct {
	// ID is the key file's name.
	ID       string
	Created  time.Time
	Host     string
	Username string
	KDF      string
	// Current is set for the key this handle was opened with.
	Current bool
	// Err is set when the key file cannot be read or used (damaged, or a
	// KDF this program does not know); only ID and Current are valid then.
	Err error
}

// kdfParams returns the parameters for new keys: the test override given to
// Init or Open, else the defaults.
func (r *Repository) kdfParams() kdfParamsFunc {
	if r.kdf != nil {
		return r.kdf
	}
	return crypto.DefaultKDFParams
}

// keyNames lists the key files. It reads the backend without the local
// cache: which keys exist must never come from a stale copy.
func (r *Repository) keyNames(ctx context.Context) ([]string, error) {
	var names []string
	if err := r.raw.List(ctx, backend.Key, func(n string, _ int64) error {
		names = append(names, n)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return names, nil
}

// loadKeyFile reads and decodes key file name. Errors name the file; a
// damaged or unusable one wraps ErrCorrupt.
func loadKeyFile(ctx context.Context, be backend.Backend, name string) (keyFile, error) {
	var kf keyFile
	buf, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.Key, Name: name})
	if err != nil {
		return kf, fmt.Errorf("load key %s: %w", name, err)
	}
	if err := json.Unmarshal(buf, &kf); err != nil {
		return kf, fmt.Errorf("key %s: %v: %w", name, err, ErrCorrupt)
	}
	if kf.KDF != "argon2id" {
		return kf, fmt.Errorf("key %s: unknown KDF %q: %w", name, kf.KDF, ErrCorrupt)
	}
	if err := kf.Params.Validate(); err != nil {
		return kf, fmt.Errorf("key %s: %v: %w", name, err, ErrCorrupt)
	}
	return kf, nil
}

// unwrap opens the master key sealed in kf with password.
func (kf keyFile) unwrap(password []byte) (*crypto.Key, error) {
	plain, err := crypto.OpenWith(crypto.WrappingKey(password, kf.Params), kf.Data)
	if err != nil {
		return nil, ErrWrongPassword
	}
	var k crypto.Key
	if err := json.Unmarshal(plain, &k); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrCorrupt)
	}
	return &k, nil
}

// Keys lists the repository's key files, oldest first, those that cannot
// be used last. A damaged key file is reported in its KeyInfo.Err rather
// than failing the listing, so that it can still be seen and removed.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	names, err := r.keyNames(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]KeyInfo, 0, len(names))
	for _, n := range names {
		ki := KeyInfo{ID: n, Current: n == r.keyID}
		kf, err := loadKeyFile(ctx, r.raw, n)
		switch {
		case errors.Is(err, backend.ErrNotFound):
			continue // removed since the listing
		case errors.Is(err, ErrCorrupt):
			ki.Err = err
		case err != nil:
			return nil, err
		default:
			ki.Created, ki.Host, ki.Username, ki.KDF = kf.Created, kf.Host, kf.Username, kf.KDF
		}
		keys = append(keys, ki)
	}
	slices.SortFunc(keys, func(a, b KeyInfo) int {
		if (a.Err == nil) != (b.Err == nil) {
			if a.Err == nil {
				return -1
			}
			return 1
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys, nil
}

// AddKey stores a new key file that opens the repository with password
// (the same master key, wrapped anew) and returns its ID.
func (r *Repository) AddKey(ctx context.Context, password []byte) (string, error) {
	if len(password) == 0 {
		return "", errors.New("add key: empty password")
	}
	id, err := writeKey(ctx, r.raw, r.key, password, r.kdfParams())
	if err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	return id, nil
}

// resolveKey returns the one key file in names that ref names in full or
// by a unique prefix.
func resolveKey(names []string, ref string) (string, error) {
	ref = strings.ToLower(ref)
	if ref == "" {
		return "", fmt.Errorf("empty key ID: %w", ErrNoKey)
	}
	var match []string
	for _, n := range names {
		if n == ref {
			return n, nil
		}
		if strings.HasPrefix(n, ref) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("key %q: %w", ref, ErrNoKey)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("key prefix %q is ambiguous (%d matches)", ref, len(match))
}

// shortKey abbreviates a key ID for messages, as listings show it.
func shortKey(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// RemoveKey deletes the key file named by id, its full name or a unique
// prefix. It refuses the key this handle was opened with (ErrKeyInUse;
// ChangePassword replaces that one) and the last usable key (ErrLastKey).
//
// Callers should hold an exclusive lock: two clients each removing the
// other's key at the same time would otherwise leave none.
func (r *Repository) RemoveKey(ctx context.Context, id string) error {
	keys, err := r.Keys(ctx)
	if err != nil {
		return fmt.Errorf("remove key %s: %w", id, err)
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.ID
	}
	name, err := resolveKey(names, id)
	if err != nil {
		return fmt.Errorf("remove key: %w", err)
	}
	if name == r.keyID {
		return fmt.Errorf("remove key %s: %w: this command was opened with it; use `key passwd` to replace its password, or open the repository with another password to remove it", shortKey(name), ErrKeyInUse)
	}
	// Only keys that can be used count: removing the one good key beside
	// damaged ones would lock everyone out just the same.
	usable := 0
	for _, k := range keys {
		if k.ID != name && k.Err == nil {
			usable++
		}
	}
	if usable == 0 {
		return fmt.Errorf("remove key %s: %w", shortKey(name), ErrLastKey)
	}
	if err := r.raw.Remove(ctx, backend.Handle{Type: backend.Key, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("remove key %s: %w", shortKey(name), err)
	}
	return nil
}

// ChangePassword replaces the key this handle was opened with by a new one
// for password and returns the new key's ID. The new key is stored and
// verified before the old one is removed, so an interruption leaves both
// passwords working, never neither. Not safe for concurrent use with
// KeyID.
func (r *Repository) ChangePassword(ctx context.Context, password []byte) (string, error) {
	old := r.keyID
	id, err := r.AddKey(ctx, password)
	if err != nil {
		return "", fmt.Errorf("change password: %w", err)
	}
	// Read it back: until the new key is known to open the repository, the
	// old one may be the only way in.
	kf, err := loadKeyFile(ctx, r.raw, id)
	if err == nil {
		var k *crypto.Key
		if k, err = kf.unwrap(password); err == nil && *k != *r.key {
			err = fmt.Errorf("it holds another master key: %w", ErrCorrupt)
		}
	}
	if err != nil {
		return "", fmt.Errorf("change password: new key %s does not work, the old password still does: %w", shortKey(id), err)
	}
	if err := r.raw.Remove(ctx, backend.Handle{Type: backend.Key, Name: old}); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return id, fmt.Errorf("change password: new key %s added, but removing the old key %s failed, so both passwords work (remove it with `key remove`): %w", shortKey(id), shortKey(old), err)
	}
	// The cached entry of the old key cannot open the repository any more
	// (lookups start from existing key files), but it still holds the
	// master key in the keyring: drop it rather than wait for it to expire.
	if r.keyDesc != "" {
		keycache.Forget(r.keyDesc)
	}
	r.keyID, r.keyDesc = id, keycache.Description(id, kf.Params.Salt, password)
	return id, nil
}
