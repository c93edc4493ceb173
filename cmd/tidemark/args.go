package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Cobra's own argument checks say "requires at least 1 arg(s), only
// received 0"; these say what to give instead, with an example.

// needArgs accepts min to max arguments (max < 0: any number); otherwise
// it fails with "COMMAND: HINT".
func needArgs(min, max int, hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < min:
			return fmt.Errorf("%s: %s", commandName(cmd), hint)
		case max >= 0 && len(args) > max:
			return fmt.Errorf("%s: too many arguments (%s); %s", commandName(cmd), quoteArgs(args[max:]), hint)
		}
		return nil
	}
}

// noArgs refuses arguments for commands that take none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, but was given %s (see tidemark %s --help)", commandName(cmd), quoteArgs(args), commandName(cmd))
	}
	return nil
}

// commandName is the command as typed after "tidemark": "key remove".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}
