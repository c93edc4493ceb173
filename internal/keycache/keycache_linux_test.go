package keycache

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestPutGet(t *testing.T) {
	salt := make([]byte, 16)
	rand.Read(salt)
	desc := Description("keyfile", salt, []byte("pw"))
	if desc == Description("keyfile", salt, []byte("other")) || desc == Description("other", salt, []byte("pw")) {
		t.Fatal("descriptions must depend on key file and password")
	}
	if _, ok := Get(desc); ok {
		t.Fatal("found before put")
	}
	Put(desc, []byte("secret key material"))
	got, ok := Get(desc)
	if !ok {
		t.Skip("no usable kernel keyring here")
	}
	if !bytes.Equal(got, []byte("secret key material")) {
		t.Fatalf("got %q", got)
	}
	Forget(desc)
	if _, ok := Get(desc); ok {
		t.Fatal("found after forget")
	}
}
