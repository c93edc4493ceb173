// Command tidemark is a backup program whose incremental backups cost time
// proportional to what changed.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/tidemark/tidemark/internal/app"
	"github.com/tidemark/tidemark/internal/backup"
)

// Exit codes, documented in the README.
const (
	exitOK          = 0
	exitFailure     = 1
	exitPartial     = 3 // backup saved, but some files could not be read or recording it locally failed
	exitNoRepo      = 10
	exitLocked      = 11
	exitWrongPass   = 12
	exitInterrupted = 130
)

// errPartial marks a backup that finished but could not read some files.
var errPartial = errors.New("some files could not be read")

func main() {
	// Backups churn through large short-lived buffers (chunks, packs) over a
	// small live heap; collecting more often keeps peak memory low for a
	// few percent of CPU. GOGC still overrides this.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	setUserFromUID()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := newCLI(os.Stdout, os.Stderr)
	err := c.root().ExecuteContext(ctx)
	os.Exit(exitCode(ctx, err, c))
}

func exitCode(ctx context.Context, err error, a *cli) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var committed *backup.CommittedError
	switch {
	case errors.Is(err, errPartial):
		return exitPartial // already reported
	case ctx.Err() != nil:
		code = exitInterrupted
		if !errors.As(err, &committed) {
			err = errors.New("interrupted")
		}
	case errors.As(err, &committed):
		// The snapshot is complete: the failure only costs later backups.
		code = exitPartial
	case errors.Is(err, app.ErrNoRepository):
		code = exitNoRepo
	case errors.Is(err, app.ErrLocked):
		code = exitLocked
	case errors.Is(err, app.ErrWrongPassword):
		code = exitWrongPass
	}
	a.printError(err, code)
	return code
}
