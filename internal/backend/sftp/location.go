package sftp

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config says where a repository lives and how to reach it. Zero values
// mean "ask ssh_config, then use the default", so a Config parsed from a
// short location such as "sftp:backuphost:repo" picks up the user's
// ~/.ssh/config like the ssh command would.
type Config struct {
	// User is the login name; empty means ssh_config's User, else the
	// current user.
	User string
	// Host is the host name or ssh_config alias (matched against Host
	// patterns; HostName may replace it for the connection).
	Host string
	// Port is the TCP port; 0 means ssh_config's Port, else 22.
	Port int
	// Path is the repository directory on the server. A relative path is
	// relative to the login directory, as with scp; a leading "~/" is
	// accepted and means the same.
	Path string

	// IdentityFiles are private keys to try, before those named by
	// ssh_config. "~/" is expanded.
	IdentityFiles []string
	// KnownHostsFile checks the server's host key; empty means ssh_config's
	// UserKnownHostsFile, else ~/.ssh/known_hosts.
	KnownHostsFile string
	// InsecureIgnoreHostKey disables host key checking entirely: unknown
	// and changed keys are accepted. Only for throwaway servers; the
	// default refuses unknown host keys.
	InsecureIgnoreHostKey bool
	// ConfigFile is the ssh_config file to read; empty means
	// ~/.ssh/config if it exists. A ConfigFile that is set must exist.
	ConfigFile string
	// DialTimeout bounds connecting, including the SSH handshake; 0 means
	// 30 s. A context deadline that comes sooner wins.
	DialTimeout time.Duration
}

// String renders the location in the scp-like form ParseLocation reads.
func (c Config) String() string {
	var sb strings.Builder
	sb.WriteString("sftp:")
	if c.User != "" {
		sb.WriteString(c.User)
		sb.WriteByte('@')
	}
	if strings.Contains(c.Host, ":") {
		sb.WriteString("[" + c.Host + "]")
	} else {
		sb.WriteString(c.Host)
	}
	if c.Port != 0 {
		sb.WriteString(":" + strconv.Itoa(c.Port))
	}
	sb.WriteString(":" + c.Path)
	return sb.String()
}

// ParseLocation parses "sftp:[user@]host[:port]:/path" (scp-like; the
// "sftp:" prefix may be left out) or "sftp://[user@]host[:port]/path".
// Bracket IPv6 addresses: "sftp:[::1]:2222:/srv/repo".
//
// In the scp-like form a number followed by a colon right after the host
// is a port, so "host:2222:/x" is port 2222 and path "/x"; a relative path
// that itself starts with "digits:" cannot be written in that form.
func ParseLocation(loc string) (Config, error) {
	switch {
	case strings.HasPrefix(loc, "sftp://"):
		return parseURL(loc)
	case strings.HasPrefix(loc, "sftp:"):
		return parseSCP(loc, loc[len("sftp:"):])
	default:
		return parseSCP(loc, loc)
	}
}

func locError(loc, format string, args ...any) error {
	return permanent(fmt.Errorf("sftp location %q: %s", loc, fmt.Sprintf(format, args...)))
}

func parseURL(loc string) (Config, error) {
	u, err := url.Parse(loc)
	if err != nil {
		// url.Error repeats the location; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, locError(loc, "%v", err)
	}
	var cfg Config
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return Config{}, locError(loc, "passwords are not supported; use a key or ssh-agent")
		}
		cfg.User = u.User.Username()
		if cfg.User == "" {
			return Config{}, locError(loc, "empty user name before @")
		}
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return Config{}, locError(loc, "missing host (want sftp://[user@]host[:port]/path)")
	}
	if p := u.Port(); p != "" {
		if cfg.Port, err = parsePort(p); err != nil {
			return Config{}, locError(loc, "%v", err)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return Config{}, locError(loc, "empty port after host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Config{}, locError(loc, "unexpected query or fragment")
	}
	cfg.Path = u.Path
	if cfg.Path == "" || cfg.Path == "/" {
		return Config{}, locError(loc, "missing repository path (want sftp://[user@]host[:port]/path)")
	}
	return cfg, nil
}

func parseSCP(loc, s string) (Config, error) {
	const want = "want sftp:[user@]host[:port]:/path"
	var cfg Config
	// The user ends at an @ that comes before the first colon; an @ later
	// on belongs to the path.
	if at := strings.IndexByte(s, '@'); at >= 0 {
		if colon := strings.IndexByte(s, ':'); colon < 0 || at < colon {
			cfg.User = s[:at]
			if cfg.User == "" {
				return Config{}, locError(loc, "empty user name before @")
			}
			s = s[at+1:]
		}
	}
	var rest string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Config{}, locError(loc, "missing ] after IPv6 address")
		}
		cfg.Host, rest = s[1:end], s[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return Config{}, locError(loc, "missing :path after host (%s)", want)
		}
	} else {
		colon := strings.IndexByte(s, ':')
		if colon < 0 {
			return Config{}, locError(loc, "missing :path after host (%s)", want)
		}
		cfg.Host, rest = s[:colon], s[colon:]
	}
	if cfg.Host == "" {
		return Config{}, locError(loc, "missing host (%s)", want)
	}
	if strings.ContainsAny(cfg.Host, "/ \t@") {
		return Config{}, locError(loc, "invalid host %q (%s)", cfg.Host, want)
	}
	rest = rest[1:]
	if i := strings.IndexByte(rest, ':'); i > 0 && allDigits(rest[:i]) {
		p, err := parsePort(rest[:i])
		if err != nil {
			return Config{}, locError(loc, "%v", err)
		}
		cfg.Port, rest = p, rest[i+1:]
	}
	if rest == "" {
		return Config{}, locError(loc, "missing repository path (%s)", want)
	}
	cfg.Path = rest
	return cfg, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("invalid port %q (want 1-65535)", s)
	}
	return p, nil
}
