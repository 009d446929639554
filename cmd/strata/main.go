// Command strata runs the Strata storefront and its tools: serve the
// reference service, seed its database, and run the scale-journey demo.
//
// The CLI is built on cobra: every command has --help, flags read the same
// way across commands (--db, --addr, --log-level), and errors exit non-zero
// with one line that says what was wrong (2 for usage errors, 1 otherwise).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // the time zones of --warm-peak, on machines without a zone database

	"github.com/spf13/cobra"
)

// defaultDB is the embedded default database: an SQLite file in the
// working folder.
const defaultDB = "sqlite://strata.db"

// usageError marks an error in how the command was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling, so a second
		// Ctrl-C ends a process that is still draining.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "strata: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(stderr, "Run 'strata --help' for usage.\n")
		return 2
	}
	return 1
}

// globals are the flags every command accepts.
type globals struct {
	logLevel string
	stdout   io.Writer
	stderr   io.Writer
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", g.logLevel)}
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: lvl})), nil
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "strata",
		Short: "Strata takes a data-backed Go service from one box to many, and measures every step",
		Long: `Strata is a toolkit and a reference service (the storefront) for scaling a
Go service on PostgreSQL: caching, read replicas, sharding, query advice,
load testing and monitoring, each step proved with numbers.

Start with 'strata demo': it runs the storefront on an embedded SQLite
database, drives real traffic at it and prints what it measured.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			_, err := g.logger() // reject a bad --log-level before any work
			return err
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServe(g), newSeed(g), newDemo(g), newLoadtest(g), newAdvise(g), newShard(g), newAlerts(g), newVersion(g))
	for _, c := range root.Commands() {
		if c.Args == nil {
			c.Args = noArgs
		}
	}
	return root
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))}
	}
	return nil
}

// version is set by the linker (-ldflags "-X main.version=...").
var version = "dev"

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.stdout, "strata", version)
			return nil
		},
	}
}
