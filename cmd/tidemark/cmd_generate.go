package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/tidemark/tidemark/internal/app"
)

func (a *cli) generateCmd() *cobra.Command {
	var manDir, shell string
	files := map[string]*string{"bash": new(string), "zsh": new(string), "fish": new(string), "powershell": new(string)}
	cmd := &cobra.Command{
		Use:   "generate --man DIR | --completion SHELL",
		Short: "Write man pages or a shell completion script",
		Long: `Write a man page for every command into a directory, or the completion
script of a shell (bash, zsh, fish or powershell) to standard output, or,
as restic names them, --bash-completion FILE and the like ("-" for standard
output).

Examples:
  tidemark generate --man /usr/local/share/man/man1
  tidemark generate --completion bash > /etc/bash_completion.d/tidemark
  tidemark generate --completion zsh > "${fpath[1]}/_tidemark"
  tidemark generate --completion fish > ~/.config/fish/completions/tidemark.fish`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root := cmd.Root()
			did := false
			if manDir != "" {
				if err := a.writeMan(root, manDir); err != nil {
					return err
				}
				did = true
			}
			if shell != "" {
				if err := writeCompletion(root, shell, a.out); err != nil {
					return fmt.Errorf("--completion: %w", err)
				}
				did = true
			}
			for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
				if path := *files[sh]; path != "" {
					if err := writeCompletionFile(root, sh, path, a.out); err != nil {
						return fmt.Errorf("--%s-completion: %w", sh, err)
					}
					did = true
				}
			}
			if !did {
				return errors.New("generate: give --man DIR or --completion SHELL (bash, zsh, fish, powershell), e.g. tidemark generate --completion bash")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&manDir, "man", "", "write man pages into this `directory`")
	f.StringVar(&shell, "completion", "", "write the completion script of this `shell` (bash, zsh, fish, powershell) to standard output")
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		f.StringVar(files[sh], sh+"-completion", "", "write the "+sh+" completion script to this `file` (- for standard output)")
	}
	return cmd
}

// writeMan writes the man pages of root's command tree into dir.
func (a *cli) writeMan(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--man: %w", err)
	}
	// Without the "auto generated on DATE" line, the same build writes
	// the same pages.
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "TIDEMARK", Section: "1", Source: "tidemark " + app.Version().Version, Manual: "Tidemark Manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("--man %s: %w", dir, err)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, root.Name()+"*.1"))
	a.printf("wrote %d man pages to %s (try: man -l %s)\n", len(pages), displayPath(dir), displayPath(filepath.Join(dir, root.Name()+".1")))
	return nil
}

// writeCompletion writes shell's completion script for root to w.
func writeCompletion(root *cobra.Command, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return fmt.Errorf("unknown shell %q (want bash, zsh, fish or powershell)", shell)
}

// writeCompletionFile writes shell's completion script to path ("-": out).
func writeCompletionFile(root *cobra.Command, shell, path string, out io.Writer) error {
	if path == "-" {
		return writeCompletion(root, shell, out)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeCompletion(root, shell, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
