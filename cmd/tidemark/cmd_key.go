package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *cli) keyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the repository's passwords (key files)",
		Long: `Manage the passwords that open the repository. Each password has its own
key file holding the same master key, so any of them opens the repository
and removing one does not touch the data.

Examples:
  tidemark key list
  tidemark key add --new-password-file ~/.tidemark-pass-laptop
  tidemark key passwd           # replace the password used to open
  tidemark key remove 1a2b3c4d  # a key ID or a unique prefix of one`,
	}
	cmd.AddCommand(a.keyListCmd(), a.keyAddCmd(), a.keyRemoveCmd(), a.keyPasswdCmd())
	return cmd
}

func (a *cli) keyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the key files; * marks the one the password opened",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			keys, err := r.Keys(ctx)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.Error != "" {
					fmt.Fprintf(a.errOut, "warning: %s\n", k.Error)
				}
			}
			if a.jsonOut {
				return a.printJSON(keys)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, " \tID\tUser\tHost\tCreated")
			for _, k := range keys {
				mark := " "
				if k.Current {
					mark = "*"
				}
				if k.Error != "" {
					fmt.Fprintf(tw, "%s\t%s\t\t\t(unusable)\n", mark, shortID(k.ID))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, shortID(k.ID), displayPath(k.Username), displayPath(k.Host),
					k.Created.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		}),
	}
}

func (a *cli) keyAddCmd() *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add a password: a new key file for the same master key",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			pw, err := a.newPassword(newPasswordFile)
			if err != nil {
				return err
			}
			res, err := r.AddKey(ctx, pw)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printf("added key %s\n", shortID(res.Added))
			return nil
		}),
	}
	cmd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from this file (else asked twice on the terminal)")
	return cmd
}

func (a *cli) keyRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key file (by ID or unique prefix); not the one the password opened",
		Args:  needArgs(1, 1, "give the key to remove by its ID or a unique prefix, as tidemark key list shows it, e.g. tidemark key remove 1a2b3c4d"),
		RunE: runE(func(ctx context.Context, args []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.RemoveKey(ctx, args[0])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printf("removed key %s\n", args[0])
			return nil
		}),
	}
}

func (a *cli) keyPasswdCmd() *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password: add a key for the new one, then remove the one used to open",
		Args:  noArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			pw, err := a.newPassword(newPasswordFile)
			if err != nil {
				return err
			}
			res, err := r.ChangePassword(ctx, pw)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(res)
			}
			a.printf("password changed: added key %s, removed key %s\n", shortID(res.Added), shortID(res.Removed))
			return nil
		}),
	}
	cmd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from this file (else asked twice on the terminal)")
	return cmd
}

// shortID abbreviates a key ID as listings show it; remove accepts it.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// newPassword reads the password for a new key from file, or else asks
// for it twice on the terminal. TIDEMARK_PASSWORD and --password-file are
// not consulted: they give the password that opens the repository.
func (a *cli) newPassword(file string) ([]byte, error) {
	if file != "" {
		return readPasswordFile(file, "new password file")
	}
	return promptPassword("New password: ", true, "no new password given: use --new-password-file, or run on a terminal")
}
