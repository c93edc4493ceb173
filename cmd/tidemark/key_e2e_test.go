//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tidemark/tidemark/internal/app"
)

// TestKeyManagement: a second password opens the repository and backs up
// into it, `key list` shows both keys with the one in use marked, `key
// passwd` makes the old password fail with the wrong-password exit code,
// and `key remove` removes a key by prefix but refuses the one in use.
func TestKeyManagement(t *testing.T) { forEachBackend(t, keyManagement) }

func keyManagement(t *testing.T, e *env) {
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// as returns e using the password in a new file named name.
	as := func(name, password string) *env {
		file := filepath.Join(e.dir, name)
		if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := *e
		c.password = file
		return &c
	}
	first, second, third := e, as("pw2", "second password"), as("pw3", "third password")

	first.mustRun("init")
	// Without a controlling terminal (its own session) there is no one
	// to ask for the new password.
	cmd := first.command("key", "add")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--new-password-file") {
		t.Fatalf("key add without a new password or a terminal: %v %s", err, out)
	}
	if r := first.mustRun("key", "add", "--new-password-file", second.password); !strings.Contains(r.stdout, "added key") {
		t.Fatalf("key add: %s", r.stdout)
	}
	list := first.mustRun("key", "list").stdout
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 3 || strings.Count(list, "*") != 1 {
		t.Fatalf("key list, want a header and two keys, one marked:\n%s", list)
	}
	keys := keyList(t, second)
	if len(keys) != 2 || keys[0].Current || !keys[1].Current {
		t.Fatalf("keys seen with the second password: %+v", keys)
	}
	firstKey, secondKey := keys[0].ID, keys[1].ID
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, firstKey[:8]) != strings.HasPrefix(line, "*") {
			t.Fatalf("key list does not mark exactly the first key %s as current:\n%s", firstKey[:8], list)
		}
	}

	second.mustRun("backup", src)
	first.mustRun("snapshots")

	// The key in use cannot be removed; an unknown prefix names itself.
	if r := second.run("key", "remove", secondKey[:8]); r.code != 1 || !strings.Contains(r.stderr, "key passwd") {
		t.Fatalf("removing the key in use: exit %d %s", r.code, r.stderr)
	}
	if r := second.run("key", "remove", "zz99"); r.code != 1 || !strings.Contains(r.stderr, `"zz99"`) {
		t.Fatalf("removing an unknown key: exit %d %s", r.code, r.stderr)
	}

	if r := second.mustRun("key", "passwd", "--new-password-file", third.password); !strings.Contains(r.stdout, "password changed") {
		t.Fatalf("key passwd: %s", r.stdout)
	}
	if r := second.run("snapshots"); r.code != exitWrongPass || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("old password after passwd: exit %d %s", r.code, r.stderr)
	}
	keys = keyList(t, third)
	if len(keys) != 2 || keys[0].ID != firstKey || keys[1].ID == secondKey || !keys[1].Current {
		t.Fatalf("keys after passwd: %+v", keys)
	}
	if sns := third.snapshots(); len(sns) != 1 {
		t.Fatalf("%d snapshots seen with the new password", len(sns))
	}

	third.mustRun("key", "remove", firstKey[:6])
	if r := first.run("snapshots"); r.code != exitWrongPass {
		t.Fatalf("removed password: exit %d %s", r.code, r.stderr)
	}
	if keys := keyList(t, third); len(keys) != 1 || !keys[0].Current {
		t.Fatalf("keys after remove: %+v", keys)
	}
	third.mustRun("check")
}

func keyList(t *testing.T, e *env) []app.Key {
	t.Helper()
	out := e.mustRun("key", "list", "--json").stdout
	var keys []app.Key
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return keys
}
