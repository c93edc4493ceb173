package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/tidemark/tidemark/internal/restore"
)

// TestOverwriteMode: --overwrite takes restic's modes, alone means
// always (it was a boolean), and "--overwrite never" with a space works
// although the flag's value may be left out.
func TestOverwriteMode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want restore.Overwrite
		rest []string
		err  string
	}{
		{[]string{"latest"}, restore.OverwriteRefuse, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite"}, restore.OverwriteAlways, []string{"latest"}, ""},
		{[]string{"--overwrite", "latest"}, restore.OverwriteAlways, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite", "never"}, restore.OverwriteNever, []string{"latest"}, ""},
		{[]string{"--overwrite", "if-newer", "latest"}, restore.OverwriteIfNewer, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite=if-changed"}, restore.OverwriteIfChanged, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite=always"}, restore.OverwriteAlways, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite=true"}, restore.OverwriteAlways, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite=false"}, restore.OverwriteRefuse, []string{"latest"}, ""},
		{[]string{"latest", "--overwrite=sometimes"}, 0, nil, `--overwrite "sometimes"`},
		{[]string{"latest", "--overwrite", "sometimes"}, 0, nil, `too many arguments ("sometimes")`},
		{[]string{"latest", "never"}, 0, nil, `too many arguments ("never")`},
		{[]string{"latest", "--overwrite=never", "always"}, 0, nil, `too many arguments ("always")`},
	} {
		cmd := newCLI(&bytes.Buffer{}, &bytes.Buffer{}).restoreCmd()
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		value, _ := cmd.Flags().GetString("overwrite")
		rest, mode, err := overwriteMode(cmd, cmd.Flags().Args(), value)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v %v, want error %q", tc.args, mode, err, tc.err)
			}
		case err != nil || mode != tc.want || !slices.Equal(rest, tc.rest):
			t.Errorf("%q: %v %q %v, want %v %q", tc.args, mode, rest, err, tc.want, tc.rest)
		}
	}
}
