package config

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary text to the parser: it must never panic, every
// error must be an Errors naming the file, and a configuration it accepts
// must parse again to the same settings.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("[jobs.a]\nrepository = \"/r\"\npassword_file = \"/pw\"\npaths = [\"/a\"]\n"))
	f.Add([]byte("[jobs.a]\ntrigger = { settle = \"1s\", max_delay = \"2d\" }\npaths = [\n\"/a\",\n]\n"))
	f.Add([]byte("[server]\nlisten = \"[::1]:7420\"\nmax_parallel = 0\n[jobs.\"x y\".retention]\ntiers = \"U:1M\"\n"))
	f.Add([]byte("jobs.a.paths = [1, 2]\njobs.a.alert.url = \"http://\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.toml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			for _, e := range es {
				if e.File != "f.toml" || e.Line < 0 {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		again, err := Parse("f.toml", cfg.Source)
		if err != nil {
			t.Fatalf("accepted once, refused again: %v", err)
		}
		if d := Diff(cfg, again); len(d) != 0 {
			t.Fatalf("parsed differently: %v", d)
		}
	})
}
