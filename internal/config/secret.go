package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Secret says where a password is: a file (its first line), a command
// (the first line it prints) or an environment variable. Exactly one is
// set in a valid configuration.
type Secret struct {
	File    string `json:"file,omitempty"`
	Command string `json:"command,omitempty"`
	Env     string `json:"env,omitempty"`
}

func (s Secret) count() int {
	n := 0
	for _, v := range []string{s.File, s.Command, s.Env} {
		if v != "" {
			n++
		}
	}
	return n
}

// String names the reference, never the secret.
func (s Secret) String() string {
	switch {
	case s.File != "":
		return "password_file " + s.File
	case s.Command != "":
		return "password_command " + s.Command
	case s.Env != "":
		return "password_env " + s.Env
	}
	return "no password"
}

// commandTimeout bounds a password command (a prompt that nobody answers
// must not hang a job forever).
const commandTimeout = time.Minute

// Resolve reads the secret.
func (s Secret) Resolve(ctx context.Context) ([]byte, error) {
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("read password_file: %w", err)
		}
		return firstLine(b, "password_file "+s.File)
	case s.Command != "":
		ctx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		cmd := ShellCommand(ctx, s.Command)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(errOut.String())
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			if msg != "" {
				return nil, fmt.Errorf("password_command %q: %w: %s", s.Command, err, msg)
			}
			return nil, fmt.Errorf("password_command %q: %w", s.Command, err)
		}
		return firstLine(out.Bytes(), "the output of password_command "+s.Command)
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return nil, fmt.Errorf("password_env: %s is not set or empty", s.Env)
		}
		return []byte(v), nil
	}
	return nil, errors.New("no password given")
}

func firstLine(b []byte, what string) ([]byte, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	return line, nil
}

// ShellCommand runs line through the system's shell (sh -c, or cmd /C on
// Windows), as hooks, alert commands and password commands are written.
func ShellCommand(ctx context.Context, line string) *exec.Cmd {
	if runtime.GOOS == "windows" {
		return exec.CommandContext(ctx, "cmd", "/C", line)
	}
	return exec.CommandContext(ctx, "/bin/sh", "-c", line)
}
