// Package crypto holds Tidemark's cryptography: the master key, authenticated
// encryption of every stored object, keyed content IDs, and the
// password-based wrapping of the master key.
//
// Encryption is XChaCha20-Poly1305 with a random 192-bit nonce per message,
// so nonce reuse is not a concern however many blobs a repository holds.
// Content IDs are keyed BLAKE3 with a per-repository secret. The master key
// is wrapped with a key derived from the password by argon2id.
package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/tidemark/tidemark/internal/blob"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Overhead is the number of bytes encryption adds to a message.
const Overhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// ErrUnauthenticated is returned when a ciphertext fails authentication:
// it was damaged, or encrypted under another key.
var ErrUnauthenticated = errors.New("ciphertext failed authentication (corrupt data or wrong key)")

// Key is a repository's master key material.
type Key struct {
	Encrypt [32]byte `json:"encrypt"`
	MAC     [32]byte `json:"mac"`
	// ChunkerSeed keys the chunker's gear table so chunk boundaries do not
	// reveal which known files a repository holds.
	ChunkerSeed [32]byte `json:"chunker_seed"`
}

// NewRandomKey creates fresh master key material.
func NewRandomKey() (*Key, error) {
	k := &Key{}
	for _, b := range [][]byte{k.Encrypt[:], k.MAC[:], k.ChunkerSeed[:]} {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
	}
	return k, nil
}

// Hasher returns a keyed hasher for content IDs. It is not safe for
// concurrent use; make one per goroutine.
func (k *Key) Hasher() *blake3.Hasher {
	h, err := blake3.NewKeyed(k.MAC[:])
	if err != nil {
		// Only fails for a key of the wrong length, which the type rules out.
		panic(err)
	}
	return h
}

// ID computes the content ID of plaintext.
func (k *Key) ID(plaintext []byte) blob.ID {
	h := k.Hasher()
	_, _ = h.Write(plaintext)
	var id blob.ID
	h.Sum(id[:0])
	return id
}

// Seal encrypts plaintext, appending nonce||ciphertext||tag to dst.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	return seal(k.Encrypt[:], dst, plaintext)
}

// Open decrypts and authenticates a message produced by Seal, appending the
// plaintext to dst.
func (k *Key) Open(dst, msg []byte) ([]byte, error) {
	return open(k.Encrypt[:], dst, msg)
}

func seal(key, dst, plaintext []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err) // key length is fixed by the caller
	}
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	dst = append(dst, nonce[:]...)
	return aead.Seal(dst, nonce[:], plaintext, nil)
}

func open(key, dst, msg []byte) ([]byte, error) {
	if len(msg) < Overhead {
		return nil, fmt.Errorf("ciphertext of %d bytes is too short: %w", len(msg), ErrUnauthenticated)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	n := chacha20poly1305.NonceSizeX
	out, err := aead.Open(dst, msg[:n], msg[n:], nil)
	if err != nil {
		return nil, ErrUnauthenticated
	}
	return out, nil
}

// KDFParams are the argon2id parameters stored in a key file.
type KDFParams struct {
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	Salt    []byte `json:"salt"`
}

// DefaultKDFParams returns parameters that take a fraction of a second and
// 64 MiB of memory on a current machine, with a fresh salt.
func DefaultKDFParams() (KDFParams, error) {
	p := KDFParams{Time: 3, Memory: 64 * 1024, Threads: 2, Salt: make([]byte, 16)}
	if _, err := rand.Read(p.Salt); err != nil {
		return p, fmt.Errorf("generate salt: %w", err)
	}
	return p, nil
}

// Validate rejects parameters from a damaged or hostile key file that would
// be useless or exhaust memory.
func (p KDFParams) Validate() error {
	switch {
	case p.Time < 1 || p.Time > 100:
		return fmt.Errorf("argon2 time %d out of range", p.Time)
	case p.Memory < 8*1024 || p.Memory > 4*1024*1024:
		return fmt.Errorf("argon2 memory %d KiB out of range", p.Memory)
	case p.Threads < 1:
		return fmt.Errorf("argon2 threads %d out of range", p.Threads)
	case len(p.Salt) < 16:
		return fmt.Errorf("salt of %d bytes is too short", len(p.Salt))
	}
	return nil
}

// WrappingKey derives the key that wraps the master key from a password.
func WrappingKey(password []byte, p KDFParams) []byte {
	return argon2.IDKey(password, p.Salt, p.Time, p.Memory, p.Threads, 32)
}

// SealWith encrypts plaintext under an explicit 32-byte key (used to wrap
// the master key).
func SealWith(key, plaintext []byte) []byte { return seal(key, nil, plaintext) }

// OpenWith decrypts a message from SealWith.
func OpenWith(key, msg []byte) ([]byte, error) { return open(key, nil, msg) }
