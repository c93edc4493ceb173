// Package keycache keeps unlocked repository keys in the kernel's user
// keyring for a while, so that frequent backups (every minute or two) do
// not each pay for the memory-hard password derivation. The keyring is
// readable only by processes of the same user, who can read the password
// file too; entries expire on their own.
package keycache

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// TTL is how long an unused entry lives; each use renews it.
const TTL = 15 * time.Minute

// Description names the entry of one key file unlocked with one password,
// without revealing either.
func Description(keyFile string, salt, password []byte) string {
	h := sha256.New()
	h.Write([]byte("tidemark key cache v1\x00"))
	h.Write([]byte(keyFile))
	h.Write([]byte{0})
	h.Write(salt)
	h.Write([]byte{0})
	h.Write(password)
	return "tidemark:" + hex.EncodeToString(h.Sum(nil)[:20])
}
