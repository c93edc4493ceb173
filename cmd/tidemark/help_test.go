package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/tidemark/tidemark/internal/app"
)

// TestFlagPlaceholders: pflag takes a `quoted` word in a flag's usage as
// its value's placeholder, so a usage quoting a command (`tidemark watch`)
// showed "--state tidemark watch" in help. Every placeholder must be one
// word.
func TestFlagPlaceholders(t *testing.T) {
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		check := func(f *pflag.Flag) {
			if name, _ := pflag.UnquoteUsage(f); strings.ContainsAny(name, " \t") {
				t.Errorf("%s --%s: placeholder %q (a backquoted phrase in its usage)", cmd.CommandPath(), f.Name, name)
			}
		}
		cmd.LocalFlags().VisitAll(check)
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(newCLI(&bytes.Buffer{}, &bytes.Buffer{}).root())
}

// TestDisplay: names are printed as they are when printable, quoted with
// escapes otherwise; messages keep their words and lose only control
// characters and invalid bytes.
func TestDisplay(t *testing.T) {
	for _, tc := range []struct{ in, path, text string }{
		{"/home/me/report.odt", "/home/me/report.odt", "/home/me/report.odt"},
		{"/home/me/Übersicht 日本", "/home/me/Übersicht 日本", "/home/me/Übersicht 日本"},
		{"/x/\x1b]0;pwned\a", `"/x/\x1b]0;pwned\a"`, `/x/\x1b]0;pwned\a`},
		{"/x/a\nerror: forged", `"/x/a\nerror: forged"`, `/x/a\nerror: forged`},
		{"/x/bad\xff\xfename", `"/x/bad\xff\xfename"`, `/x/bad\xff\xfename`},
		{"/x/\u202egnp.exe", `"/x/\u202egnp.exe"`, `/x/\u202egnp.exe`},
		{"/x/tab\there", `"/x/tab\there"`, `/x/tab\there`},
		{`"quoted"`, `"\"quoted\""`, `"quoted"`},
	} {
		if got := displayPath(tc.in); got != tc.path {
			t.Errorf("displayPath(%q) = %s, want %s", tc.in, got, tc.path)
		}
		if got := displayText(tc.in); got != tc.text {
			t.Errorf("displayText(%q) = %s, want %s", tc.in, got, tc.text)
		}
	}
}

// TestProgressLine: the file being read is shown escaped, cut to the
// terminal's width from its start.
func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	b := &progressBar{w: &buf, width: 80}
	b.draw(app.Progress{Files: 3, Current: "/home/me/" + strings.Repeat("d/", 40) + "title\x1b]0;pwned\a"})
	line := strings.TrimPrefix(buf.String(), "\r\x1b[K")
	if strings.ContainsAny(line, "\x1b\a\n") || !strings.HasSuffix(line, `title\x1b]0;pwned\a`) || !strings.Contains(line, "...") {
		t.Fatalf("progress line %q", line)
	}
	if n := utf8.RuneCountInString(line); n > 79 {
		t.Fatalf("progress line of %d characters on an 80-column terminal: %q", n, line)
	}
	buf.Reset()
	(&progressBar{w: &buf}).draw(app.Progress{Files: 3, Current: "/x"})
	if strings.Contains(buf.String(), "/x") {
		t.Fatalf("without a known width the path is left out: %q", buf.String())
	}
}
