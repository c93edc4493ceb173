package keycache

import (
	"golang.org/x/sys/unix"
)

// Permission bits of keyctl(2) (not exported by x/sys/unix).
const (
	keyPosAll = 0x3f000000
	keyUsrAll = 0x003f0000
)

// Get returns the cached payload for desc and renews its lifetime.
func Get(desc string) ([]byte, bool) {
	id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0)
	if err != nil {
		return nil, false
	}
	buf := make([]byte, 4096)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	if err != nil || n > len(buf) {
		return nil, false
	}
	_, _ = unix.KeyctlInt(unix.KEYCTL_SET_TIMEOUT, id, int(TTL.Seconds()), 0, 0)
	return buf[:n], true
}

// Put stores payload under desc; failures (no keyring in a container, quota)
// only mean the next run derives the key again.
func Put(desc string, payload []byte) {
	id, err := unix.AddKey("user", desc, payload, unix.KEY_SPEC_USER_KEYRING)
	if err != nil {
		return
	}
	// Readable by this user's processes (not only by ones that possess the
	// keyring), and nobody else's.
	_ = unix.KeyctlSetperm(id, keyPosAll|keyUsrAll)
	_, _ = unix.KeyctlInt(unix.KEYCTL_SET_TIMEOUT, id, int(TTL.Seconds()), 0, 0)
}

// Forget removes the entry for desc.
func Forget(desc string) {
	if id, err := unix.KeyctlSearch(unix.KEY_SPEC_USER_KEYRING, "user", desc, 0); err == nil {
		_, _ = unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_USER_KEYRING, 0, 0)
	}
}
