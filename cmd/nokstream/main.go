// Command nokstream runs the nokstream services: one subcommand per service,
// "all" for a single machine, and the operator's tools.
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
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go onSignals(sigs, cancel, os.Stderr, os.Exit)
	status := run(ctx, rootCommand(), os.Stderr)
	cancel()
	os.Exit(status)
}

// onSignals: the first SIGINT or SIGTERM starts a graceful shutdown (cancel:
// the service reports not ready, stops accepting and drains, for at most
// --shutdown-timeout); a second one exits at once, with status 130.
func onSignals(sigs <-chan os.Signal, cancel func(), stderr io.Writer, exit func(int)) {
	s := <-sigs
	fmt.Fprintf(stderr, "nokstream: %v: shutting down (again to exit at once)\n", s)
	cancel()
	s = <-sigs
	fmt.Fprintf(stderr, "nokstream: %v again: exiting now, without draining\n", s)
	exit(130)
}

// exitError ends nokstream with a status other than 1, saying its message
// on stderr as it is (verify's 3: intact, origin not proven).
type exitError struct {
	status int
	msg    string
}

func (e *exitError) Error() string { return e.msg }

// run executes root and returns the exit status: 0; the status of an
// exitError; or 1 for any other error, which it prints on stderr.
func run(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	err := root.ExecuteContext(ctx)
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		return ee.status
	}
	fmt.Fprintln(stderr, "nokstream:", err)
	return 1
}

type globalFlags struct {
	logLevel  string
	logFormat string
	// adminAddrFlag is --admin-addr; adminAddr gives a service's address.
	adminAddrFlag string
	pprof         bool
	// shutdownTimeout is --shutdown-timeout; addrFile is --addr-file.
	shutdownTimeout time.Duration
	addrFile        string
}

func rootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "nokstream",
		Short: "Records, archives and serves the video evidence of qualification exams",
		Long: `nokstream records, archives and serves the video evidence of qualification exams.

Every flag can also be set from the environment: --db is NOKSTREAM_DB,
--rtsp-addr is NOKSTREAM_RTSP_ADDR, and so on. Flags win over the environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			setMemoryLimit(g.logger())
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().StringVar(&g.adminAddrFlag, "admin-addr", "",
		"services: serve /metrics, /readyz, /healthz (and --pprof) on this address, never on a public port "+
			"(default: 127.0.0.1:9190 registry and all, 127.0.0.1:9191 ingest, 127.0.0.1:9192 transcoder, 127.0.0.1:9193 archiver)")
	root.PersistentFlags().BoolVar(&g.pprof, "pprof", false, "services: serve Go's profiles (/debug/pprof/) on the admin address")
	root.PersistentFlags().DurationVar(&g.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout,
		"services: on SIGTERM, how long the requests in flight may take to finish before they are cut (a second signal exits at once)")
	root.PersistentFlags().StringVar(&g.addrFile, "addr-file", "",
		"services: once every listener is open, write the addresses they are bound to in this file as JSON "+
			"(admin, http, and ingest's rtsp, rtsps, rtp, rtcp, webrtc_udp, webrtc_tcp), written whole or not at all; "+
			"with port 0 in an address, the port the kernel picked is there (and in the log)")
	root.AddCommand(
		allCommand(g), ingestCommand(g), transcoderCommand(g), archiverCommand(g), registryCommand(g),
		migrateCommand(g), simCommand(g), deviceCommand(g), userCommand(g), linkCommand(g),
		orgCommand(g), qualificationCommand(g), importCommand(g),
		retentionCommand(g), evidenceCommand(g), verifyCommand(g), auditCommand(g), nodeCommand(g), indexCommand(g),
	)
	return root
}

// applyEnv sets every flag not given on the command line from NOKSTREAM_<FLAG>.
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "NOKSTREAM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment %s: %w", name, e)
			}
		}
	})
	return err
}

func (g *globalFlags) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
