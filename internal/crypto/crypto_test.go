package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, 100, 1 << 20} {
		msg := bytes.Repeat([]byte{0xab}, size)
		ct := k.Seal(nil, msg)
		if len(ct) != size+Overhead {
			t.Fatalf("size %d: ciphertext %d bytes", size, len(ct))
		}
		pt, err := k.Open(nil, ct)
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("size %d: round trip failed: %v", size, err)
		}
		ct[len(ct)/2] ^= 1
		if _, err := k.Open(nil, ct); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("size %d: flipped bit not detected: %v", size, err)
		}
	}
	other, _ := NewRandomKey()
	if _, err := other.Open(nil, k.Seal(nil, []byte("x"))); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal("wrong key not detected")
	}
	if _, err := k.Open(nil, []byte("short")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal("short message not detected")
	}
}

func TestIDIsKeyed(t *testing.T) {
	a, _ := NewRandomKey()
	b, _ := NewRandomKey()
	if a.ID([]byte("x")) == b.ID([]byte("x")) {
		t.Fatal("IDs of different repositories must differ")
	}
	if x, y := a.ID([]byte("x")), a.ID([]byte("x")); x != y {
		t.Fatal("ID must be deterministic")
	}
}

func TestWrapping(t *testing.T) {
	p, err := DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	p.Time, p.Memory = 1, 8*1024 // fast for tests
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	wk := WrappingKey([]byte("secret"), p)
	ct := SealWith(wk, []byte("master"))
	if pt, err := OpenWith(WrappingKey([]byte("secret"), p), ct); err != nil || string(pt) != "master" {
		t.Fatalf("unwrap: %q %v", pt, err)
	}
	if _, err := OpenWith(WrappingKey([]byte("wrong"), p), ct); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal("wrong password accepted")
	}
	bad := []KDFParams{{Time: 0, Memory: 65536, Threads: 1, Salt: p.Salt}, {Time: 1, Memory: 1 << 30, Threads: 1, Salt: p.Salt}, {Time: 1, Memory: 65536, Threads: 1}}
	for i, b := range bad {
		if b.Validate() == nil {
			t.Errorf("case %d: invalid params accepted", i)
		}
	}
}
