// Command ovsbpfctl is the debugging CLI of ovsbpf: ovn-trace and
// ovs-appctl style commands that read the Southbound database or talk to a
// running ovsbpfd.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit status for a command that ran but found
// something wrong (for example, unsupported logical flows).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCommand().ExecuteContext(ctx)
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "ovsbpfctl:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "ovsbpfctl",
		Short: "Inspect and debug the ovsbpf datapath and its logical pipeline",
		Long: `ovsbpfctl inspects the logical pipeline that ovsbpf builds from the OVN
Southbound database, and the datapath that runs it.

  ovsbpfctl trace             trace a packet through the logical pipeline, like ovn-trace
  ovsbpfctl lflow             check and list logical flows as ovsbpf compiles them
  ovsbpfctl dpctl/dump-flows  the datapath's megaflows (from a running ovsbpfd)
  ovsbpfctl dpif/show         datapath counters and ports
  ovsbpfctl upcall/show       slow-path counters and handler latency
  ovsbpfctl dpctl/dump-conntrack [zone=N]  connections the eBPF conntrack tracks
  ovsbpfctl dpctl/flush-conntrack [zone=N] delete tracked connections
  ovsbpfctl dpctl/ct-stats-show [-m] [zone=N]  connections by protocol
  ovsbpfctl appctl CMD        any ovsbpfd control command, as ovs-appctl does`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log progress and skipped flows to stderr")
	root.AddCommand(newTraceCommand(), newLflowCommand())
	root.AddCommand(newDaemonCommands()...)
	return root
}
