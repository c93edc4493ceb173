package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"
	"github.com/tidemark/tidemark/internal/api"
	"github.com/tidemark/tidemark/internal/changes"
	"github.com/tidemark/tidemark/internal/config"
)

func (a *cli) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration file of tidemark run",
		Args:  noArgs,
	}
	cmd.AddCommand(a.configCheckCmd())
	return cmd
}

// configProblem is one error of config check --json.
type configProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

// configCheckOutput is config check --json.
type configCheckOutput struct {
	File     string          `json:"file"`
	Valid    bool            `json:"valid"`
	Problems []configProblem `json:"problems,omitempty"`
	Jobs     []string        `json:"jobs,omitempty"`
	// Running: a daemon answered; Changes are what it would change on a
	// reload with this file, RunningFile the file it runs with.
	Running     bool     `json:"running"`
	RunningFile string   `json:"running_file,omitempty"`
	Changes     []string `json:"changes,omitempty"`
	// Note says why the running daemon could not be asked.
	Note string `json:"note,omitempty"`
}

// errConfigInvalid is returned after the problems were printed.
var errConfigInvalid = errors.New("the configuration has errors")

func (a *cli) configCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file and show what a running tidemark run would change with it",
		Long: `Check validates a configuration file (default: as tidemark run finds it) and
lists every problem with its line and key. When a tidemark run answers at the
file's API address, it shows what that daemon would change on a reload
(SIGHUP) with this file: settings per job, jobs added and removed, and server
settings that take effect only at a restart.`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(func(ctx context.Context, args []string) error {
			path := configPath("")
			if len(args) == 1 {
				path = args[0]
			}
			out, err := checkConfig(ctx, path)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				a.printConfigCheck(out)
			}
			if !out.Valid {
				return errConfigInvalid
			}
			return nil
		}),
	}
}

func checkConfig(ctx context.Context, path string) (*configCheckOutput, error) {
	out := &configCheckOutput{File: path}
	cfg, err := config.Load(path)
	var es config.Errors
	switch {
	case errors.As(err, &es):
		for _, e := range es {
			out.Problems = append(out.Problems, configProblem{File: e.File, Line: e.Line, Key: e.Key, Message: e.Msg})
		}
		return out, nil
	case err != nil:
		return nil, err
	}
	out.Valid = true
	for _, j := range cfg.Jobs {
		out.Jobs = append(out.Jobs, j.Name)
	}
	if cfg.Server.Listen == "" {
		out.Note = "the API is off in this file: no running daemon to compare with"
		return out, nil
	}
	stateDir := cfg.Server.StateDir
	if stateDir == "" {
		if stateDir, err = changes.DefaultStateDir(); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(cfg.Server, tokenFile(cfg.Server, stateDir))
	var resp api.ConfigResponse
	if err == nil {
		err = c.Get(ctx, "/api/v1/config", &resp)
	}
	switch {
	case errors.Is(err, api.ErrNotRunning) || errors.Is(err, fs.ErrNotExist):
		out.Note = "no tidemark run answers at " + cfg.Server.Listen
		return out, nil
	case err != nil:
		out.Note = "could not ask the running tidemark run: " + err.Error()
		return out, nil
	}
	running, err := config.Parse(resp.File, []byte(resp.Source))
	if err != nil {
		out.Note = "the running daemon's configuration does not parse here: " + err.Error()
		return out, nil
	}
	out.Running, out.RunningFile = true, resp.File
	out.Changes = config.Diff(running, cfg)
	return out, nil
}

func (a *cli) printConfigCheck(out *configCheckOutput) {
	if !out.Valid {
		for _, p := range out.Problems {
			e := config.Error{File: p.File, Line: p.Line, Key: p.Key, Msg: p.Message}
			fmt.Fprintln(a.errOut, displayText(e.Error()))
		}
		return
	}
	a.printf("%s: valid, %d jobs: %s\n", out.File, len(out.Jobs), displayPaths(out.Jobs, ", "))
	switch {
	case !out.Running:
		a.printf("%s\n", out.Note)
	case len(out.Changes) == 0:
		a.printf("the running tidemark run (%s) has this configuration already\n", out.RunningFile)
	default:
		a.printf("a reload (SIGHUP) of the running tidemark run (%s) would change:\n", out.RunningFile)
		for _, c := range out.Changes {
			a.printf("  %s\n", displayText(c))
		}
	}
}
