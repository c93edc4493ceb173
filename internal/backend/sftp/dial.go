package sftp

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

const (
	defaultDialTimeout = 30 * time.Second
	// keepaliveInterval and keepaliveTimeout bound how long a call can
	// hang on a connection that died silently (pkg/sftp requests have no
	// timeout of their own): an unanswered keepalive closes the
	// connection, which fails the pending requests with "connection lost"
	// so the next call redials.
	keepaliveInterval = 30 * time.Second
	keepaliveTimeout  = 30 * time.Second
)

// endpoint is a Config resolved against ssh_config and the defaults: what
// a dial needs, kept by the Backend so it can reconnect.
type endpoint struct {
	host          string // to connect to, after ssh_config HostName
	port          int
	user          string
	identityFiles []string
	requiredKeys  int // the first requiredKeys identity files were named in Config and must load
	knownHosts    []string
	insecure      bool
	dialTimeout   time.Duration
}

func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// resolve applies the precedence Config > ssh_config > defaults.
func resolve(cfg Config) (endpoint, error) {
	if cfg.Host == "" {
		return endpoint{}, permanent(errors.New("no host given"))
	}
	home, homeErr := os.UserHomeDir()
	localUser := currentUser()
	ep := endpoint{
		host:        cfg.Host,
		port:        cfg.Port,
		user:        cfg.User,
		insecure:    cfg.InsecureIgnoreHostKey,
		dialTimeout: cfg.DialTimeout,
	}
	if ep.dialTimeout <= 0 {
		ep.dialTimeout = defaultDialTimeout
	}

	confFile, explicit := cfg.ConfigFile, cfg.ConfigFile != ""
	if explicit {
		confFile = expandTokens(confFile, home, nil)
	} else if homeErr == nil {
		confFile = filepath.Join(home, ".ssh", "config")
	}
	var hs hostSettings
	if confFile != "" {
		f, err := os.Open(confFile)
		switch {
		case err == nil:
			hs, err = parseSSHConfig(f, confFile, cfg.Host)
			f.Close()
			if err != nil {
				return endpoint{}, permanent(fmt.Errorf("ssh config: %w", err))
			}
		case explicit || !errors.Is(err, fs.ErrNotExist):
			return endpoint{}, permanent(fmt.Errorf("ssh config: %w", err))
		}
	}

	if hs.HostName != "" {
		ep.host = expandTokens(hs.HostName, "", map[byte]string{'h': cfg.Host, '%': "%"})
	}
	if ep.port == 0 && hs.Port != "" {
		p, err := parsePort(hs.Port)
		if err != nil {
			return endpoint{}, permanent(fmt.Errorf("ssh config %s, Port for %s: %w", confFile, cfg.Host, err))
		}
		ep.port = p
	}
	if ep.port == 0 {
		ep.port = 22
	}
	if ep.user == "" {
		ep.user = hs.User
	}
	if ep.user == "" {
		ep.user = localUser
	}
	if ep.user == "" {
		return endpoint{}, permanent(errors.New("no user name: set one in the location (user@host) or ssh config"))
	}

	needHome := func(what string) error {
		if homeErr != nil {
			return permanent(fmt.Errorf("%s: %w", what, homeErr))
		}
		return nil
	}
	tokens := map[byte]string{
		'd': home, 'u': localUser, 'h': ep.host, 'n': cfg.Host,
		'r': ep.user, 'p': strconv.Itoa(ep.port), '%': "%",
	}
	for _, f := range cfg.IdentityFiles {
		ep.identityFiles = append(ep.identityFiles, expandTokens(f, home, tokens))
	}
	ep.requiredKeys = len(ep.identityFiles)
	for _, f := range hs.IdentityFiles {
		ep.identityFiles = append(ep.identityFiles, expandTokens(f, home, tokens))
	}
	if len(ep.identityFiles) == 0 && homeErr == nil {
		// ssh's defaults, in its order of preference.
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			ep.identityFiles = append(ep.identityFiles, filepath.Join(home, ".ssh", n))
		}
	}

	switch {
	case cfg.KnownHostsFile != "":
		ep.knownHosts = []string{expandTokens(cfg.KnownHostsFile, home, tokens)}
	case len(hs.KnownHostsFiles) > 0:
		for _, f := range hs.KnownHostsFiles {
			ep.knownHosts = append(ep.knownHosts, expandTokens(f, home, tokens))
		}
	case !ep.insecure:
		if err := needHome("known_hosts"); err != nil {
			return endpoint{}, err
		}
		ep.knownHosts = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	return ep, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// conn is one SSH connection and its SFTP session.
type conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	// Server extensions, looked up once per connection.
	hardlink, posixRename, fsync bool

	once sync.Once
	done chan struct{} // closed once the connection is known dead or closed
}

func (c *conn) markDead() { c.once.Do(func() { close(c.done) }) }

func (c *conn) dead() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close tears the connection down. Closing the SSH transport first makes
// the SFTP reader stop, which sftp.Client.Close waits for.
func (c *conn) close() {
	c.markDead()
	c.ssh.Close()
	c.sftp.Close()
}

// keepalive closes the connection if the server stops answering, so a
// silent network failure turns into "connection lost" and a redial
// instead of a call that hangs forever.
func (c *conn) keepalive() {
	t := time.NewTicker(keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			// OpenSSH answers unknown requests with a failure, which is
			// still an answer: only an error or silence means trouble.
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(keepaliveTimeout)
		select {
		case err := <-reply:
			timer.Stop()
			if err != nil {
				c.close()
				return
			}
		case <-timer.C:
			c.close()
			return
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

// dial connects, authenticates, checks the host key and starts SFTP.
func dial(ctx context.Context, ep endpoint) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hostKeyCB, algos, err := hostKeyChecker(ep)
	if err != nil {
		return nil, err
	}
	auth, err := newAuth(ep)
	if err != nil {
		return nil, err
	}
	defer auth.close()

	addr := ep.addr()
	d := net.Dialer{Timeout: ep.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// The SSH and SFTP handshakes take no context: bound them with a
	// deadline and close the socket if ctx ends first.
	deadline := time.Now().Add(ep.dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.Close() })

	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:              ep.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeysCallback(auth.signers)},
		HostKeyCallback:   hostKeyCB,
		HostKeyAlgorithms: algos,
	})
	if err != nil {
		stop()
		nc.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("connect to %s: %w", addr, ctxErr)
		}
		var pe *permanentError
		if !errors.As(err, &pe) && strings.Contains(err.Error(), "unable to authenticate") {
			err = permanent(fmt.Errorf("authentication as %s failed (%s): %w", ep.user, auth.describe(), err))
		}
		return nil, fmt.Errorf("ssh %s@%s: %w", ep.user, addr, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	// Concurrent writes are safe here because a failed upload's temporary
	// file is removed, never used, so out-of-order holes do not matter;
	// they matter for speed with 16 MiB packs. Concurrent reads are the
	// default and are kept on.
	sc2, err := sftp.NewClient(client,
		sftp.UseConcurrentWrites(true),
		sftp.UseConcurrentReads(true),
	)
	if err != nil {
		stop()
		client.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("start sftp on %s: %w", addr, ctxErr)
		}
		return nil, fmt.Errorf("start sftp on %s (is the sftp subsystem enabled?): %w", addr, err)
	}
	if !stop() {
		// ctx ended just as the handshake finished, and the socket is closed.
		sc2.Close()
		client.Close()
		return nil, fmt.Errorf("connect to %s: %w", addr, ctx.Err())
	}
	nc.SetDeadline(time.Time{})

	c := &conn{ssh: client, sftp: sc2, done: make(chan struct{})}
	_, c.hardlink = sc2.HasExtension("hardlink@openssh.com")
	_, c.posixRename = sc2.HasExtension("posix-rename@openssh.com")
	_, c.fsync = sc2.HasExtension("fsync@openssh.com")
	go func() {
		client.Wait()
		c.markDead()
	}()
	go c.keepalive()
	return c, nil
}

// auth gathers the keys to offer. They go into one PublicKeysCallback
// because the ssh package tries each auth method name only once: a second
// "publickey" method would never be used.
type auth struct {
	agentConn net.Conn
	agent     agent.ExtendedAgent
	files     []ssh.Signer
	fileNames []string
}

func newAuth(ep endpoint) (*auth, error) {
	a := &auth{}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		// An unreachable agent is not fatal: ssh carries on without it.
		if c, err := net.Dial("unix", sock); err == nil {
			a.agentConn, a.agent = c, agent.NewClient(c)
		}
	}
	var skipped []string
	for i, f := range ep.identityFiles {
		required := i < ep.requiredKeys
		pem, err := os.ReadFile(f)
		if err != nil {
			if required || !errors.Is(err, fs.ErrNotExist) {
				a.close()
				return nil, permanent(fmt.Errorf("identity file: %w", err))
			}
			continue // ssh_config and default keys are optional, as in ssh
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				// Encrypted keys are used through the agent; there is no
				// terminal here to ask for a passphrase.
				skipped = append(skipped, f+" (passphrase-protected: add it to ssh-agent)")
				continue
			}
			a.close()
			return nil, permanent(fmt.Errorf("identity file %s: %w", f, err))
		}
		a.files = append(a.files, s)
		a.fileNames = append(a.fileNames, f)
	}
	if a.agent == nil && len(a.files) == 0 {
		msg := "no SSH key to authenticate with: start ssh-agent with a key loaded, or give an identity file"
		if len(skipped) > 0 {
			msg += "; skipped " + strings.Join(skipped, ", ")
		} else if len(ep.identityFiles) > 0 {
			msg += " (none of " + strings.Join(ep.identityFiles, ", ") + " exists)"
		}
		return nil, permanent(errors.New(msg))
	}
	return a, nil
}

// signers offers the agent's keys first, then the files' (skipping any the
// agent already offered, so MaxAuthTries is not spent twice on one key).
func (a *auth) signers() ([]ssh.Signer, error) {
	var out []ssh.Signer
	seen := map[string]bool{}
	if a.agent != nil {
		if ss, err := a.agent.Signers(); err == nil {
			for _, s := range ss {
				seen[string(s.PublicKey().Marshal())] = true
				out = append(out, s)
			}
		}
	}
	for _, s := range a.files {
		if !seen[string(s.PublicKey().Marshal())] {
			out = append(out, s)
		}
	}
	return out, nil
}

func (a *auth) describe() string {
	var parts []string
	if a.agent != nil {
		parts = append(parts, "ssh-agent")
	}
	parts = append(parts, a.fileNames...)
	return "tried " + strings.Join(parts, ", ")
}

func (a *auth) close() {
	if a.agentConn != nil {
		a.agentConn.Close()
	}
}

// hostKeyChecker builds the host key callback from the known_hosts files,
// and the host key algorithms to ask for: those of the keys on record for
// the host, so a server that also has, say, an ECDSA key is not asked for
// that one and reported as changed when only its Ed25519 key is known.
func hostKeyChecker(ep endpoint) (ssh.HostKeyCallback, []string, error) {
	if ep.insecure {
		return ssh.InsecureIgnoreHostKey(), nil, nil
	}
	var files []string
	for _, f := range ep.knownHosts {
		_, err := os.Stat(f)
		switch {
		case err == nil:
			files = append(files, f)
		case errors.Is(err, fs.ErrNotExist):
			// A missing file knows no hosts; the unknown-host error tells
			// the user how to create it.
		default:
			return nil, nil, permanent(fmt.Errorf("known_hosts: %w", err))
		}
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("known_hosts: %w", err))
	}
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		return permanent(&hostKeyError{ep: ep, key: key, err: err})
	}
	return check, knownAlgorithms(cb, ep), nil
}

// knownAlgorithms asks the callback about a throwaway key: the KeyError
// lists the keys on record for the address.
func knownAlgorithms(cb ssh.HostKeyCallback, ep endpoint) []string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if !errors.As(cb(ep.addr(), &net.TCPAddr{IP: net.IPv4zero, Port: ep.port}, probe), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, a := range a {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	for _, k := range ke.Want {
		if k.Key.Type() == ssh.KeyAlgoRSA {
			// One RSA key serves all three signature algorithms.
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Key.Type())
		}
	}
	return algos
}

// hostKeyError explains a refused host key and what to do about it.
type hostKeyError struct {
	ep  endpoint
	key ssh.PublicKey
	err error
}

func (e *hostKeyError) Unwrap() error { return e.err }

func (e *hostKeyError) Error() string {
	host := knownhosts.Normalize(e.ep.addr())
	files := strings.Join(e.ep.knownHosts, ", ")
	file := "~/.ssh/known_hosts"
	if len(e.ep.knownHosts) > 0 {
		file = e.ep.knownHosts[0]
	}
	scan := "ssh-keyscan " + e.ep.host
	if e.ep.port != 22 {
		scan = "ssh-keyscan -p " + strconv.Itoa(e.ep.port) + " " + e.ep.host
	}
	fp := e.key.Type() + " " + ssh.FingerprintSHA256(e.key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(e.err, &re):
		return fmt.Sprintf("host key %s of %s is marked @revoked in %s:%d; refusing to connect",
			fp, host, re.Revoked.Filename, re.Revoked.Line)
	case errors.As(e.err, &ke) && len(ke.Want) == 0:
		return fmt.Sprintf("host %s is not in known_hosts (%s), so its key %s cannot be verified; "+
			"after checking that fingerprint with the server's administrator, add the key with `%s >> %s`, "+
			"or set InsecureIgnoreHostKey to skip the check (unsafe)",
			host, files, fp, scan, file)
	case errors.As(e.err, &ke):
		var b strings.Builder
		for i, k := range ke.Want {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key))
		}
		return fmt.Sprintf("HOST KEY MISMATCH for %s: the server offered %s but %s; "+
			"someone may be intercepting the connection, or the server's key was changed. "+
			"If the change is expected, remove the old entry with `ssh-keygen -R '%s' -f %s` and add the new key with `%s >> %s`",
			host, fp, b.String(), host, ke.Want[0].Filename, scan, ke.Want[0].Filename)
	default:
		return fmt.Sprintf("host key of %s: %v", host, e.err)
	}
}
