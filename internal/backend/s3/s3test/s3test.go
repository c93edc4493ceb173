// Package s3test runs a real S3 server for tests: versitygw (Apache-2.0)
// serving a temporary directory. It is an ordinary package, not a _test
// file, so that the tests of any package can use it.
package s3test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testserver"
)

// installHint tells a developer how to get the server.
const installHint = "versitygw not found: install it with\n" +
	"\tgo install github.com/versity/versitygw/cmd/versitygw@v1.8.0\n" +
	"or point TIDEMARK_VERSITYGW at the binary"

// startTimeout bounds how long the server may take to accept connections.
const startTimeout = 30 * time.Second

// Server is a running versitygw.
type Server struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string // the root user's keys
	SecretKey string
	// Dir is the directory served: bucket b's object k is file Dir/b/k,
	// which lets tests damage stored objects directly.
	Dir string
}

// Start runs versitygw on a free local port, serving a fresh temporary
// directory, and stops it when the test ends.
//
// The binary is looked for in $TIDEMARK_VERSITYGW, then PATH, then
// $(go env GOPATH)/bin, then /tmp/tools. If it is missing the test is
// skipped, or fails when TIDEMARK_REQUIRE_SERVERS=1 (for CI, where a
// silently skipped backend would go untested).
func Start(t testing.TB) Server {
	t.Helper()
	bin, err := find()
	if err != nil {
		if os.Getenv("TIDEMARK_REQUIRE_SERVERS") == "1" {
			t.Fatalf("%v\n%s", err, installHint)
		}
		t.Skipf("%v\n%s", err, installHint)
	}
	accessKey := "tidemark" + randomHex(t, 4)
	secretKey := randomHex(t, 20)
	dir := t.TempDir()

	// The free port is found by binding and releasing it, so another
	// process can take it in between; try a few ports before giving up.
	const attempts = 3
	for i := 1; ; i++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testserver.FreePort(t)))
		out, err := run(t, bin, addr, accessKey, secretKey, dir)
		if err == nil {
			return Server{Endpoint: addr, AccessKey: accessKey, SecretKey: secretKey, Dir: dir}
		}
		if i == attempts || !strings.Contains(out, "address already in use") {
			t.Fatalf("versitygw: %v\noutput:\n%s", err, out)
		}
	}
}

// find locates the versitygw binary.
func find() (string, error) {
	if p := os.Getenv("TIDEMARK_VERSITYGW"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("TIDEMARK_VERSITYGW=%s is not an executable file", p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	for _, gp := range filepath.SplitList(goPath()) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	dirs = append(dirs, "/tmp/tools")
	for _, d := range dirs {
		if p := filepath.Join(d, "versitygw"); isExecutable(p) {
			return p, nil
		}
	}
	return "", errors.New("versitygw not in $TIDEMARK_VERSITYGW, PATH, $(go env GOPATH)/bin or /tmp/tools")
}

// goPath asks the go command, which also knows a GOPATH set with
// `go env -w`; the default ~/go covers a missing go command.
func goPath() string {
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := strings.TrimSpace(string(out)); p != "" {
			return p
		}
	}
	if p := os.Getenv("GOPATH"); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go")
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// run starts the server and waits until it accepts connections. On
// success the server is stopped by t.Cleanup; on failure it is already
// stopped and its output is returned.
func run(t testing.TB, bin, addr, accessKey, secretKey, dir string) (string, error) {
	t.Helper()
	out := &testserver.Output{}
	cmd := exec.Command(bin,
		"--access", accessKey,
		"--secret", secretKey,
		"--port", addr,
		"--quiet", // no line per request; errors are still printed
		"posix", dir)
	cmd.Stdout = out
	cmd.Stderr = out
	// Keys from the environment would be overridden by the flags anyway;
	// dropping them keeps a developer's real credentials out of the child.
	cmd.Env = filterEnv(os.Environ(), "ROOT_ACCESS_KEY", "ROOT_SECRET", "AWS_", "VGW_")
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			return out.String(), fmt.Errorf("exited before accepting connections: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return out.String(), fmt.Errorf("not accepting connections on %s after %v", addr, startTimeout)
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return "", nil
}

// filterEnv drops the variables whose names start with any of prefixes.
func filterEnv(env []string, prefixes ...string) []string {
	var kept []string
next:
	for _, kv := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		kept = append(kept, kv)
	}
	return kept
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random key: %v", err)
	}
	return hex.EncodeToString(b)
}
