package sftp

// This is a deliberately small ssh_config(5) reader. The usual library,
// github.com/kevinburke/ssh_config, is not among the modules this project
// has vetted for its build environment, and only five keywords matter
// here, so a few dozen lines are cheaper than a new dependency. It
// supports what a backup location needs: Host blocks (patterns with * and
// ?, matched with path.Match, negation with !), "Keyword value" and
// "Keyword=value", quoted values, and the first-value-wins rule. Match
// blocks are skipped (their conditions are not evaluated) and Include is
// ignored; settings the user needs from those can be passed in Config.

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// hostSettings are the ssh_config values that apply to one host.
type hostSettings struct {
	HostName        string
	User            string
	Port            string
	IdentityFiles   []string // every IdentityFile line that applies, in order
	KnownHostsFiles []string // the first UserKnownHostsFile line's files
}

// parseSSHConfig returns the settings for host (an alias as the user wrote
// it) from an ssh_config file. name is for error messages.
func parseSSHConfig(r io.Reader, name, host string) (hostSettings, error) {
	var hs hostSettings
	host = strings.ToLower(host) // ssh matches host names case-insensitively
	active := true               // lines before the first Host apply to all hosts
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		key, args, err := splitConfigLine(sc.Text())
		if err != nil {
			return hostSettings{}, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		if key == "" {
			continue
		}
		switch key {
		case "host":
			if len(args) == 0 {
				return hostSettings{}, fmt.Errorf("%s:%d: Host without a pattern", name, line)
			}
			active = matchHost(args, host)
			continue
		case "match":
			// Unsupported: skip the block rather than guess.
			active = false
			continue
		}
		if !active || len(args) == 0 {
			continue
		}
		// As in ssh, the first value obtained for a keyword wins, so
		// specific Host blocks go before general ones.
		switch key {
		case "hostname":
			if hs.HostName == "" {
				hs.HostName = args[0]
			}
		case "user":
			if hs.User == "" {
				hs.User = args[0]
			}
		case "port":
			if hs.Port == "" {
				hs.Port = args[0]
			}
		case "identityfile":
			hs.IdentityFiles = append(hs.IdentityFiles, args[0])
		case "userknownhostsfile":
			if hs.KnownHostsFiles == nil {
				hs.KnownHostsFiles = args
			}
		}
	}
	if err := sc.Err(); err != nil {
		return hostSettings{}, fmt.Errorf("%s: %w", name, err)
	}
	return hs, nil
}

// splitConfigLine splits "Keyword value..." or "Keyword=value..." into a
// lower-case keyword and its arguments; comments and blank lines give "".
func splitConfigLine(s string) (string, []string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '#' {
		return "", nil, nil
	}
	end := strings.IndexAny(s, " \t=")
	if end < 0 {
		return strings.ToLower(s), nil, nil
	}
	key := strings.ToLower(s[:end])
	rest := strings.TrimLeft(s[end:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	var args []string
	for rest != "" {
		if rest[0] == '#' {
			break // trailing comment
		}
		var arg string
		if rest[0] == '"' {
			q := strings.IndexByte(rest[1:], '"')
			if q < 0 {
				return "", nil, fmt.Errorf("unterminated quote in %s", key)
			}
			arg, rest = rest[1:q+1], rest[q+2:]
		} else {
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			arg, rest = rest[:end], rest[end:]
		}
		args = append(args, arg)
		rest = strings.TrimLeft(rest, " \t")
	}
	return key, args, nil
}

// matchHost reports whether host matches a Host line's patterns: some
// positive pattern matches and no negated one does.
func matchHost(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		for _, p := range strings.Split(p, ",") { // "Host a,b" is accepted too
			neg := strings.HasPrefix(p, "!")
			p = strings.ToLower(strings.TrimPrefix(p, "!"))
			ok, err := path.Match(p, host)
			if err != nil || !ok {
				continue
			}
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// expandTokens replaces ssh_config's % tokens and a leading ~ in a file
// name; tokens maps the letter after % to its value.
func expandTokens(s, home string, tokens map[byte]string) string {
	if s == "~" {
		return home
	}
	if strings.HasPrefix(s, "~/") {
		s = home + s[1:]
	}
	if !strings.Contains(s, "%") {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+1 < len(s) {
			if v, ok := tokens[s[i+1]]; ok {
				sb.WriteString(v)
				i++
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}
