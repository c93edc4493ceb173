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

// kdfOverride lets tests use cheap argon2 parameters; production code never
// sets it (see SetTestKDF).
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

// openKey tries every key file with the password.
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
	for _, n := range names {
		buf, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.Key, Name: n})
		if err != nil {
			lastErr = err
			continue
		}
		var kf keyFile
		if err := json.Unmarshal(buf, &kf); err != nil {
			lastErr = fmt.Errorf("key %s: %v: %w", n, err, ErrCorrupt)
			continue
		}
		if kf.KDF != "argon2id" {
			lastErr = fmt.Errorf("key %s: unknown KDF %q", n, kf.KDF)
			continue
		}
		if err := kf.Params.Validate(); err != nil {
			lastErr = fmt.Errorf("key %s: %w", n, err)
			continue
		}
		desc := keycache.Description(n, kf.Params.Salt, password)
		if useCache {
			if plain, ok := keycache.Get(desc); ok {
				var k crypto.Key
				if json.Unmarshal(plain, &k) == nil {
					return &k, n, desc, true, nil
				}
			}
		}
		plain, err := crypto.OpenWith(crypto.WrappingKey(password, kf.Params), kf.Data)
		if err != nil {
			continue // another key may match
		}
		var k crypto.Key
		if err := json.Unmarshal(plain, &k); err != nil {
			return nil, "", "", false, fmt.Errorf("key %s: %v: %w", n, err, ErrCorrupt)
		}
		return &k, n, desc, false, nil
	}
	if lastErr != nil && !errors.Is(lastErr, ErrCorrupt) {
		return nil, "", "", false, lastErr
	}
	return nil, "", "", false, ErrWrongPassword
}
