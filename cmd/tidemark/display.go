package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names in a snapshot are whatever the files were called, and a name can
// hold any byte but '/' and NUL. Printed raw, a name with an escape
// sequence ("\x1b]0;title\a") retitles or reprograms the user's terminal,
// and one with a newline forges output lines. So everything printed for
// people goes through these helpers; --json output stays exact.

// printable reports whether s can go to a terminal as it is: valid UTF-8
// made of printable characters (strconv.IsPrint: no control, format or
// separator characters but the ASCII space).
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			// RuneError is also what an invalid byte decodes to; a real
			// U+FFFD in a name is quoted too, which is harmless.
			return false
		}
	}
	return true
}

// displayPath returns a path (or name, host, tag) for printing: as it is
// when printable, else quoted Go-style with its control characters and
// invalid bytes escaped ("/home/me/\x1b]0;x\a", "/bad\xff"). A printable
// path that starts with a double quote is quoted too, so that it cannot
// pass for an escaped one.
func displayPath(p string) string {
	if printable(p) && !strings.HasPrefix(p, `"`) {
		return p
	}
	return strconv.Quote(p)
}

// displayPaths is displayPath over a list, joined by sep.
func displayPaths(ps []string, sep string) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = displayPath(p)
	}
	return strings.Join(out, sep)
}

// displayText returns a message for printing with the control characters
// and invalid bytes of the names inside it escaped in place (\n, \x1b,
// \xff), and nothing else changed: messages name paths among their words,
// so they are not quoted whole.
func displayText(s string) string {
	if printable(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
