package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/repo"
)

// keyJSON is the stable JSON shape of one key in `key list --json`.
type keyJSON struct {
	ID       string     `json:"id"`
	Current  bool       `json:"current"`
	Created  *time.Time `json:"created,omitempty"`
	Host     string     `json:"host,omitempty"`
	Username string     `json:"username,omitempty"`
	KDF      string     `json:"kdf,omitempty"`
	Error    string     `json:"error,omitempty"`
}

func (a *app) keyCmd() *cobra.Command {
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

func (a *app) keyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the key files; * marks the one the password opened",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, err := a.openRepo(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			keys, err := r.Keys(ctx)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if k.Err != nil {
					fmt.Fprintf(a.errOut, "warning: %v\n", k.Err)
				}
			}
			if a.jsonOut {
				out := make([]keyJSON, 0, len(keys))
				for _, k := range keys {
					kj := keyJSON{ID: k.ID, Current: k.Current}
					if k.Err != nil {
						kj.Error = k.Err.Error()
					} else {
						created := k.Created
						kj.Created, kj.Host, kj.Username, kj.KDF = &created, k.Host, k.Username, k.KDF
					}
					out = append(out, kj)
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, " \tID\tUser\tHost\tCreated")
			for _, k := range keys {
				mark := " "
				if k.Current {
					mark = "*"
				}
				if k.Err != nil {
					fmt.Fprintf(tw, "%s\t%s\t\t\t(unusable)\n", mark, shortID(k.ID))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, shortID(k.ID), k.Username, k.Host,
					k.Created.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		}),
	}
}

func (a *app) keyAddCmd() *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add a password: a new key file for the same master key",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			r, _, release, err := a.openLocked(ctx, repo.LockShared, "key add")
			if err != nil {
				return err
			}
			defer release()
			pw, err := a.newPassword(newPasswordFile)
			if err != nil {
				return err
			}
			id, err := r.AddKey(ctx, pw)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"added": id})
			}
			a.printf("added key %s\n", shortID(id))
			return nil
		}),
	}
	cmd.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from this file (else asked twice on the terminal)")
	return cmd
}

func (a *app) keyRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key file (by ID or unique prefix); not the one the password opened",
		Args:  cobra.ExactArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			// Exclusive: two clients removing each other's keys at once
			// could otherwise leave the repository with none.
			r, _, release, err := a.openLocked(ctx, repo.LockExclusive, "key remove")
			if err != nil {
				return err
			}
			defer release()
			if err := r.RemoveKey(ctx, args[0]); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"removed": strings.ToLower(args[0])})
			}
			a.printf("removed key %s\n", args[0])
			return nil
		}),
	}
}

func (a *app) keyPasswdCmd() *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password: add a key for the new one, then remove the one used to open",
		Args:  cobra.NoArgs,
		RunE: runE(func(ctx context.Context, _ []string) error {
			// Shared suffices: passwd removes only its own key, after adding
			// the new one, and `key remove` holds an exclusive lock.
			r, _, release, err := a.openLocked(ctx, repo.LockShared, "key passwd")
			if err != nil {
				return err
			}
			defer release()
			pw, err := a.newPassword(newPasswordFile)
			if err != nil {
				return err
			}
			old := r.KeyID()
			id, err := r.ChangePassword(ctx, pw)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"added": id, "removed": old})
			}
			a.printf("password changed: added key %s, removed key %s\n", shortID(id), shortID(old))
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
func (a *app) newPassword(file string) ([]byte, error) {
	if file != "" {
		return readPasswordFile(file, "new password file")
	}
	return promptPassword("New password: ", true, "no new password given: use --new-password-file, or run on a terminal")
}
