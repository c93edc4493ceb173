// Package sftptest runs a real OpenSSH server for tests: a private sshd on
// 127.0.0.1 with fresh host and client keys, serving SFTP to the current
// user. Tests talk to the same server code as users' machines do, so
// extensions (hardlink, fsync, posix-rename), permissions and error codes
// are the real ones.
package sftptest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testserver"
)

const sshdPath = "/usr/sbin/sshd"

// Server is a running sshd.
type Server struct {
	Host       string // 127.0.0.1
	Port       int
	User       string // the current user, who may log in with KeyFile
	KeyFile    string // client private key (ed25519, no passphrase)
	KnownHosts string // a known_hosts file holding the server's host key
	Dir        string // an empty directory the user can write

	// HostKeyFile is the server's public host key ("type base64 comment").
	HostKeyFile string
}

// Start runs sshd for the duration of the test. Without /usr/sbin/sshd the
// test is skipped, or fails when TIDEMARK_REQUIRE_SERVERS=1 (CI sets it
// so a missing package cannot pass as a green run).
func Start(t testing.TB) Server {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		msg := "sftptest: " + sshdPath + " not found; install it with: apt-get install openssh-server"
		if os.Getenv("TIDEMARK_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sftptest: current user: %v", err)
	}
	// sshd refuses to start without its privilege separation directory,
	// which a container that never ran the service lacks.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sftptest: %v", err)
	}

	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	clientKey := filepath.Join(dir, "id_ed25519")
	keygen(t, hostKey)
	keygen(t, clientKey)
	clientPub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, clientPub, 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}

	conf := filepath.Join(dir, "sshd_config")
	writeConfig(t, conf, hostKey, authorized)

	// A port picked by the kernel can be taken before sshd binds it; try
	// a few.
	var port int
	var stderr *testserver.Output
	for try := 0; ; try++ {
		port = testserver.FreePort(t)
		var exited bool
		stderr, exited = run(t, conf, port)
		if !exited {
			break
		}
		if try == 2 || !strings.Contains(stderr.String(), "Address already in use") {
			t.Fatalf("sftptest: sshd exited at start:\n%s", stderr.String())
		}
	}

	s := Server{
		Host:        "127.0.0.1",
		Port:        port,
		User:        u.Username,
		KeyFile:     clientKey,
		KnownHosts:  filepath.Join(dir, "known_hosts"),
		Dir:         data,
		HostKeyFile: hostKey + ".pub",
	}
	fields := strings.Fields(string(hostPub))
	line := fmt.Sprintf("[%s]:%d %s %s\n", s.Host, port, fields[0], fields[1])
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func keygen(t testing.TB, file string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sftptest", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("sftptest: ssh-keygen: %v\n%s", err, out)
	}
}

// writeConfig writes a minimal sshd_config. PerSourcePenalties (OpenSSH
// 9.8+) would lock 127.0.0.1 out after the tests' deliberately failed
// handshakes; older servers do not know the keyword, so it is kept only
// if sshd -t accepts it.
func writeConfig(t testing.TB, conf, hostKey, authorized string) {
	t.Helper()
	base := strings.Join([]string{
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"ListenAddress 127.0.0.1",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin yes", // tests run as root in CI
		"UsePAM no",
		"StrictModes no", // t.TempDir's parents are not sshd's idea of safe
		"PidFile none",
		"Subsystem sftp internal-sftp",
		"LogLevel VERBOSE",
	}, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(base+"PerSourcePenalties no\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if exec.Command(sshdPath, "-t", "-f", conf).Run() == nil {
		return
	}
	if err := os.WriteFile(conf, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshdPath, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("sftptest: sshd rejects its config: %v\n%s", err, out)
	}
}

// run starts sshd and waits until it accepts connections. It reports
// exited=true if sshd stopped before that.
func run(t testing.TB, conf string, port int) (stderr *testserver.Output, exited bool) {
	t.Helper()
	stderr = &testserver.Output{}
	// -D stays in the foreground so the process can be killed; -e logs to
	// stderr, shown when the server fails.
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf, "-p", strconv.Itoa(port))
	cmd.Stderr = stderr
	// Per-connection sshd processes inherit stderr; do not let one that
	// outlives the listener hold up Wait.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("sftptest: start sshd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			return stderr, true
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			t.Fatalf("sftptest: sshd did not accept connections on %s within 20s:\n%s", addr, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("sshd log:\n%s", stderr.String())
		}
	})
	return stderr, false
}
