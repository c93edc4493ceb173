package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tidemark/tidemark/internal/backend"
	"github.com/tidemark/tidemark/internal/backend/backendtest"
	"github.com/tidemark/tidemark/internal/backend/sftp/sftptest"
)

// testConfig reaches s with its key and known_hosts only: no agent and no
// ~/.ssh/config of whoever runs the tests.
func testConfig(t *testing.T, s sftptest.Server, dir string) Config {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "")
	empty := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		User:           s.User,
		Host:           s.Host,
		Port:           s.Port,
		Path:           dir,
		IdentityFiles:  []string{s.KeyFile},
		KnownHostsFile: s.KnownHosts,
		ConfigFile:     empty,
		DialTimeout:    10 * time.Second,
	}
}

func TestConformance(t *testing.T) {
	s := sftptest.Start(t)
	ctx := context.Background()
	repo := filepath.Join(s.Dir, "nested", "repo")
	b, err := Create(ctx, testConfig(t, s, repo))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.Run(t, b, backendtest.Options{DetectsExisting: true})

	// Same layout as the local backend, and no temporary files left.
	for _, d := range []string{"keys", "data", "trees", "index", "snapshots", "locks"} {
		if fi, err := os.Stat(filepath.Join(repo, d)); err != nil || !fi.IsDir() {
			t.Errorf("layout dir %s: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "trees", "0a", "0a000010")); err != nil {
		t.Errorf("sharded object not at trees/0a/0a000010: %v", err)
	}
	filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("stray temporary file %s", p)
		}
		return nil
	})

	if _, err := Create(ctx, testConfig(t, s, repo)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("create over a repository: %v", err)
	}
	b2, err := Open(ctx, testConfig(t, s, repo))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if got, err := backend.LoadAll(ctx, b2, backend.Handle{Type: backend.Config}); err != nil || string(got) != "cfg" {
		t.Errorf("config through a second connection: %q %v", got, err)
	}
	b2.Close()
	if _, err := b2.Stat(ctx, backend.Handle{Type: backend.Config}); err == nil {
		t.Error("stat on a closed backend succeeded")
	}

	_, err = Open(ctx, testConfig(t, s, filepath.Join(s.Dir, "missing")))
	if !errors.Is(err, fs.ErrNotExist) || !IsPermanent(err) {
		t.Errorf("open missing directory: %v", err)
	}
	_, err = Open(ctx, testConfig(t, s, filepath.Join(repo, "config")))
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("open a file: %v", err)
	}
}

// newRepoBackend starts an sshd and creates a repository on it, closed
// when the test ends; dir is the repository's directory on the server.
func newRepoBackend(t *testing.T) (b *Backend, dir string) {
	t.Helper()
	s := sftptest.Start(t)
	dir = filepath.Join(s.Dir, "repo")
	b, err := Create(context.Background(), testConfig(t, s, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, dir
}

func TestLargeObject(t *testing.T) {
	ctx := context.Background()
	b, _ := newRepoBackend(t)
	// Past several ioChunks, so chunking and concurrent packets are used.
	data := make([]byte, 3*ioChunk+12345)
	rand.Read(data)
	h := backend.Handle{Type: backend.Data, Name: "ff00"}
	if err := b.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	got, err := backend.LoadAll(ctx, b, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load all: %d bytes, %v", len(got), err)
	}
	off, n := int64(ioChunk-100), int64(ioChunk+200)
	got, err = b.Load(ctx, h, off, n)
	if err != nil || !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("load across chunks: %d bytes, %v", len(got), err)
	}
	_, err = b.Load(ctx, h, int64(len(data))-10, 20)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !IsPermanent(err) {
		t.Fatalf("short read: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Load(cctx, h, 0, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("load with a cancelled context: %v", err)
	}
}

func TestHostKeyChecking(t *testing.T) {
	s := sftptest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()

	cfg := testConfig(t, s, s.Dir)
	cfg.KnownHostsFile = filepath.Join(dir, "empty_known_hosts")
	if err := os.WriteFile(cfg.KnownHostsFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, cfg)
	if err == nil {
		t.Fatal("unknown host key accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf("[127.0.0.1]:%d", s.Port),
		cfg.KnownHostsFile,
		fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", s.Port, cfg.KnownHostsFile),
		"InsecureIgnoreHostKey",
		"SHA256:",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("unknown host error lacks %q:\n%s", want, msg)
		}
	}
	if !IsPermanent(err) {
		t.Errorf("unknown host error not permanent: %v", err)
	}

	// A known_hosts file that does not exist knows no hosts either.
	cfg.KnownHostsFile = filepath.Join(dir, "no_such_file")
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "not in known_hosts") {
		t.Errorf("missing known_hosts file: %v", err)
	}

	cfg.InsecureIgnoreHostKey = true
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("InsecureIgnoreHostKey: %v", err)
	}
	b.Close()
	cfg.InsecureIgnoreHostKey = false

	// Hashed entries (ssh's HashKnownHosts) for a non-22 port.
	hostPub, err := os.ReadFile(s.HostKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	hashed := knownhosts.HashHostname(knownhosts.Normalize(net.JoinHostPort(s.Host, strconv.Itoa(s.Port))))
	cfg.KnownHostsFile = filepath.Join(dir, "hashed")
	if err := os.WriteFile(cfg.KnownHostsFile, []byte(knownhosts.Line([]string{hashed}, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = Open(ctx, cfg)
	if err != nil {
		t.Fatalf("hashed known_hosts entry: %v", err)
	}
	b.Close()

	// A different key on record is a mismatch, refused with advice.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewPublicKey(pub)
	cfg.KnownHostsFile = filepath.Join(dir, "wrong")
	line := knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))}, other)
	if err := os.WriteFile(cfg.KnownHostsFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "MISMATCH") || !strings.Contains(err.Error(), "ssh-keygen -R") || !IsPermanent(err) {
		t.Errorf("mismatched host key: %v", err)
	}
}

func TestAuthenticationFailure(t *testing.T) {
	s := sftptest.Start(t)
	cfg := testConfig(t, s, s.Dir)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.IdentityFiles = []string{filepath.Join(t.TempDir(), "stranger")}
	if err := os.WriteFile(cfg.IdentityFiles[0], pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "authentication as "+s.User+" failed") || !IsPermanent(err) {
		t.Errorf("unauthorised key: %v", err)
	}

	cfg.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := Open(context.Background(), cfg); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing identity file: %v", err)
	}
}

func TestSSHConfigHonoured(t *testing.T) {
	s := sftptest.Start(t)
	ctx := context.Background()
	t.Setenv("SSH_AUTH_SOCK", "")
	home := t.TempDir()
	t.Setenv("HOME", home) // so ~ in the config means this directory
	sshDir := filepath.Join(home, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyFile(t, s.KeyFile, filepath.Join(sshDir, "backup_key"))
	copyFile(t, s.KnownHosts, filepath.Join(sshDir, "backup_known_hosts"))
	conf := filepath.Join(sshDir, "config")
	// "Host *" comes last and must lose to the specific block: the first
	// value found wins.
	text := fmt.Sprintf(`# test config
Host other !backuphost
    Port 1
Host backup*
    HostName 127.0.0.1
    Port=%d
    User "%s"
    IdentityFile ~/.ssh/backup_key
    UserKnownHostsFile %%d/.ssh/backup_known_hosts
Match exec false
    Port 3
Host *
    Port 2
    User nobody
`, s.Port, s.User)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	loc, err := ParseLocation("sftp:backuphost:" + s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	loc.ConfigFile = conf
	b, err := Create(ctx, loc)
	if err != nil {
		t.Fatalf("create through ssh_config alias: %v", err)
	}
	if err := b.Save(ctx, backend.Handle{Type: backend.Config}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	b.Close()

	// ConfigFile left empty means ~/.ssh/config.
	loc.ConfigFile = ""
	b, err = Open(ctx, loc)
	if err != nil {
		t.Fatalf("open with the default ssh config: %v", err)
	}
	b.Close()

	// Values in the location win over ssh_config: a closed port fails.
	loc.Port = closedPort(t)
	if _, err := Open(ctx, loc); err == nil || !strings.Contains(err.Error(), strconv.Itoa(loc.Port)) || IsPermanent(err) {
		t.Errorf("explicit port did not win, or refusal looks permanent: %v", err)
	}
	loc.Port = 0
	loc.User = "nosuchuser"
	if _, err := Open(ctx, loc); err == nil || !strings.Contains(err.Error(), "nosuchuser") {
		t.Errorf("explicit user did not win: %v", err)
	}

	// An explicit ConfigFile must exist.
	loc.User = ""
	loc.ConfigFile = filepath.Join(home, "nope")
	if _, err := Open(ctx, loc); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing explicit config file: %v", err)
	}
}

func TestReconnect(t *testing.T) {
	ctx := context.Background()
	b, _ := newRepoBackend(t)
	h := backend.Handle{Type: backend.Index, Name: "i1"}
	if err := b.Save(ctx, h, []byte("one")); err != nil {
		t.Fatal(err)
	}
	first := b.cur

	// The very next call after a drop may still see the old connection
	// as live, and must redial after its request fails.
	b.dropConnection()
	if got, err := backend.LoadAll(ctx, b, h); err != nil || string(got) != "one" {
		t.Fatalf("load after the connection dropped: %q %v", got, err)
	}
	if b.cur == first {
		t.Fatal("still on the dropped connection")
	}

	// Again, once the drop has been noticed.
	b.dropConnection()
	<-b.cur.done
	if err := b.Save(ctx, backend.Handle{Type: backend.Index, Name: "i2"}, []byte("two")); err != nil {
		t.Fatalf("save after the connection dropped: %v", err)
	}
	n := 0
	if err := b.List(ctx, backend.Index, func(string, int64) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("list: %d %v", n, err)
	}

	// Only the SFTP session ends while SSH stays up: nothing marks the
	// connection dead, so the failed request itself must trigger the
	// redial.
	c, err := b.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.sftp.Close()
	if c.dead() {
		t.Fatal("connection already marked dead")
	}
	if n, err := b.Stat(ctx, h); err != nil || n != 3 {
		t.Fatalf("stat after the session ended: %d %v", n, err)
	}
	if b.cur == c {
		t.Fatal("still on the closed session")
	}

	// A retried save whose first attempt stored the object but lost the
	// reply finds the object in place; holds is what tells it that the
	// object is its own.
	c = b.cur
	p, _ := b.path(backend.Handle{Type: backend.Index, Name: "i3"})
	if err := c.save(ctx, p, false, []byte("three")); err != nil {
		t.Fatal(err)
	}
	if !c.holds(p, []byte("three")) || c.holds(p, []byte("other")) {
		t.Fatal("holds gives wrong answers")
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		loc     string
		want    Config
		wantErr string
	}{
		{loc: "sftp:host:/srv/repo", want: Config{Host: "host", Path: "/srv/repo"}},
		{loc: "sftp:alice@host:/srv/repo", want: Config{User: "alice", Host: "host", Path: "/srv/repo"}},
		{loc: "sftp:alice@host:2222:/srv/repo", want: Config{User: "alice", Host: "host", Port: 2222, Path: "/srv/repo"}},
		{loc: "alice@host:/srv/repo", want: Config{User: "alice", Host: "host", Path: "/srv/repo"}},
		{loc: "host:repo", want: Config{Host: "host", Path: "repo"}},
		{loc: "sftp:host:/p@x:y", want: Config{Host: "host", Path: "/p@x:y"}},
		{loc: "sftp:[::1]:2222:/r", want: Config{Host: "::1", Port: 2222, Path: "/r"}},
		{loc: "sftp:bob@[fe80::1]:/r", want: Config{User: "bob", Host: "fe80::1", Path: "/r"}},
		{loc: "sftp://host/srv/repo", want: Config{Host: "host", Path: "/srv/repo"}},
		{loc: "sftp://alice@host:2222/srv/repo", want: Config{User: "alice", Host: "host", Port: 2222, Path: "/srv/repo"}},
		{loc: "sftp://[::1]:22/r", want: Config{Host: "::1", Port: 22, Path: "/r"}},
		{loc: "sftp:host", wantErr: "missing :path"},
		{loc: "sftp:host:", wantErr: "missing repository path"},
		{loc: "sftp:host:2222:", wantErr: "missing repository path"},
		{loc: "sftp::/r", wantErr: "missing host"},
		{loc: "sftp:@host:/r", wantErr: "empty user"},
		{loc: "sftp:host:99999:/r", wantErr: "invalid port"},
		{loc: "sftp:[::1/r", wantErr: "missing ]"},
		{loc: "sftp://host", wantErr: "missing repository path"},
		{loc: "sftp://host/", wantErr: "missing repository path"},
		{loc: "sftp:///r", wantErr: "missing host"},
		{loc: "sftp://a:pw@host/r", wantErr: "passwords are not supported"},
		{loc: "sftp://host:0/r", wantErr: "invalid port"},
		{loc: "sftp://host:x/r", wantErr: "invalid port"},
		{loc: "sftp://host/r?x=1", wantErr: "unexpected query"},
	}
	for _, tt := range tests {
		t.Run(tt.loc, func(t *testing.T) {
			got, err := ParseLocation(tt.loc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.loc) {
					t.Fatalf("got %+v, %v; want an error naming the location and %q", got, err, tt.wantErr)
				}
				if !IsPermanent(err) {
					t.Errorf("location error not permanent")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			// String gives a location that parses back to the same thing.
			again, err := ParseLocation(got.String())
			if err != nil || fmt.Sprint(again) != fmt.Sprint(got) {
				t.Fatalf("round trip through %q: %+v %v", got.String(), again, err)
			}
		})
	}
}

func TestParseSSHConfig(t *testing.T) {
	const text = `
User global  # a comment
Host *.example.com !bad.example.com
  HostName=%h.internal
  IdentityFile ~/a
Host "quoted host" web,db
  Port 2200
  IdentityFile ~/b
  UserKnownHostsFile ~/kh1 ~/kh2
Match host web
  User matched
Host *
  User late
  IdentityFile ~/c
`
	tests := []struct {
		host string
		want hostSettings
	}{
		{"a.example.com", hostSettings{HostName: "%h.internal", User: "global", IdentityFiles: []string{"~/a", "~/c"}}},
		{"bad.example.com", hostSettings{User: "global", IdentityFiles: []string{"~/c"}}},
		{"WEB", hostSettings{User: "global", Port: "2200", IdentityFiles: []string{"~/b", "~/c"}, KnownHostsFiles: []string{"~/kh1", "~/kh2"}}},
		{"quoted host", hostSettings{User: "global", Port: "2200", IdentityFiles: []string{"~/b", "~/c"}, KnownHostsFiles: []string{"~/kh1", "~/kh2"}}},
		{"other", hostSettings{User: "global", IdentityFiles: []string{"~/c"}}},
	}
	for _, tt := range tests {
		got, err := parseSSHConfig(strings.NewReader(text), "cfg", tt.host)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.host, got, tt.want)
		}
	}
	if _, err := parseSSHConfig(strings.NewReader("Host x\n  User \"open\n"), "cfg", "x"); err == nil || !strings.Contains(err.Error(), "cfg:2") {
		t.Errorf("unterminated quote: %v", err)
	}
	if got := expandTokens("~/k_%r@%h:%p%%", "/home/u", map[byte]string{'r': "bob", 'h': "srv", 'p': "22", '%': "%"}); got != "/home/u/k_bob@srv:22%" {
		t.Errorf("expandTokens: %q", got)
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("sftp load x: %w", backend.ErrNotFound), true},
		{fmt.Errorf("sftp save x: %w", backend.ErrExists), true},
		{&fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}, true},
		{permanent(errors.New("bad name")), true},
		{context.Canceled, true},
		{io.EOF, false},
		{fmt.Errorf("sftp save x: %w", sftp.ErrSSHFxConnectionLost), false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{context.DeadlineExceeded, false},
		{errors.New("sftp: \"failure\" (SSH_FX_FAILURE)"), false},
	}
	for _, tt := range tests {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestCancelledDial(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Setenv("SSH_AUTH_SOCK", "")
	cfg := Config{Host: "127.0.0.1", Port: 1, Path: "/r", InsecureIgnoreHostKey: true,
		IdentityFiles: []string{writeKey(t)}, ConfigFile: os.DevNull}
	if _, err := Open(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a cancelled context: %v", err)
	}
}

func writeKey(t *testing.T) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// closedPort returns a port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestPublishWithoutHardlinks covers servers that lack hardlink@openssh.com
// (and posix-rename): the check-then-rename fallback.
func TestPublishWithoutHardlinks(t *testing.T) {
	ctx := context.Background()
	b, repo := newRepoBackend(t)
	c, err := b.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, posix := range []bool{true, false} {
		c.hardlink, c.posixRename = false, posix
		h := backend.Handle{Type: backend.Data, Name: fmt.Sprintf("ab%v", posix)}
		if err := b.Save(ctx, h, []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := b.Save(ctx, h, []byte("second")); !errors.Is(err, backend.ErrExists) {
			t.Fatalf("posix-rename %v: overwrite: %v", posix, err)
		}
		if got, err := backend.LoadAll(ctx, b, h); err != nil || string(got) != "first" {
			t.Fatalf("posix-rename %v: %q %v", posix, got, err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(repo, "data", "ab"))
	if err != nil || len(ents) != 2 {
		t.Fatalf("shard holds %d entries (want the 2 objects, no temporary files): %v", len(ents), err)
	}
}
