//go:build !linux

package keycache

// Get finds nothing where there is no kernel keyring.
func Get(desc string) ([]byte, bool) { return nil, false }

// Put does nothing where there is no kernel keyring.
func Put(desc string, payload []byte) {}

// Forget does nothing where there is no kernel keyring.
func Forget(desc string) {}
