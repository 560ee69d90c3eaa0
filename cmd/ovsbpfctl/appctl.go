package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsbpf/ovsbpf/internal/unixctl"
)

// defaultTarget is ovsbpfd's default control socket.
const defaultTarget = "/var/run/ovsbpf/ovsbpfd.ctl"

// daemonCommands are the ovsbpfd control commands ovsbpfctl offers by
// name; any other goes through "ovsbpfctl appctl".
var daemonCommands = []struct {
	name, short, long string
	args              string // the arguments it takes, for the usage line; "" for none
	verbose           bool   // takes -m, as ovs-appctl's dpctl commands do
}{
	{name: "dpctl/dump-flows", short: "Show the datapath's megaflows with their statistics",
		long: `Prints every megaflow in the eBPF megaflow cache in ovs-dpctl syntax:
the match (fields the mask keeps, with partial masks after a slash), packets,
bytes, time since last use, and the actions (a bare number outputs to that
datapath port; ovs-vsctl get Interface NAME ofport shows an interface's).`},
	{name: "dpctl/del-flows", short: "Delete every megaflow", long: `Empties the megaflow cache, and the slow path's memory of it; the next packet of each flow goes to the slow path again.`},
	{name: "dpif/show", short: "Show datapath counters and ports", long: `Prints cache hits and misses, exact-match cache and mask statistics,
upcalls lost to a full ring, malformed packets dropped by reason, and the ports.`},
	{name: "upcall/show", short: "Show slow-path counters and handler latency", long: `Prints misses and the upcall rate, upcalls lost, what the handlers did
(installed, uncached, delivered, dropped and why), revalidator work (and
sweeps that found no logical pipeline to check flows against yet), how many
megaflows the slow path remembers (ukeys), and handler latency percentiles
from the datapath's upcall to the packet sent.`},
	{name: "dpctl/dump-conntrack", short: "Show the connections the eBPF conntrack tracks", args: "[zone=N]",
		long: `Prints one line per connection in Open vSwitch's format: protocol, the
original and reply tuples, zone, mark and labels when set, and the TCP states
of both directions. zone=N shows only that zone's connections.`},
	{name: "dpctl/flush-conntrack", short: "Delete tracked connections", args: "[zone=N]",
		long: `Deletes every connection, or only those in zone N. Packets of a deleted
connection are tracked anew: with an allow-related ACL, replies are dropped
until the side the ACL allows sends again.`},
	{name: "dpctl/ct-stats-show", short: "Count tracked connections by protocol", args: "[zone=N]", verbose: true,
		long: `Prints the number of connections, in all or in zone N, by protocol; with -m,
TCP connections by state as well.`},
}

func newDaemonCommands() []*cobra.Command {
	var cmds []*cobra.Command
	for _, dc := range daemonCommands {
		name := dc.name
		var target string
		var verbose bool
		c := &cobra.Command{
			Use:   strings.TrimSpace(name + " " + dc.args),
			Short: dc.short,
			Long:  dc.long + "\n\nThe same as: ovs-appctl -t " + defaultTarget + " " + strings.TrimSpace(name+" "+dc.args),
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if verbose {
					args = append([]string{"-m"}, args...)
				}
				return callDaemon(cmd.Context(), target, name, args...)
			},
		}
		if dc.args != "" {
			c.Args = cobra.MaximumNArgs(1)
		}
		if dc.verbose {
			c.Flags().BoolVarP(&verbose, "more", "m", false, "more detail")
		}
		c.Flags().StringVarP(&target, "target", "t", defaultTarget, "ovsbpfd's control socket")
		cmds = append(cmds, c)
	}
	var target string
	appctl := &cobra.Command{
		Use:   "appctl COMMAND [ARG...]",
		Short: "Run any ovsbpfd control command",
		Long:  "Runs a control command on ovsbpfd, as ovs-appctl -t SOCKET does. \"appctl list-commands\" lists them.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return callDaemon(cmd.Context(), target, args[0], args[1:]...)
		},
	}
	appctl.Flags().StringVarP(&target, "target", "t", defaultTarget, "ovsbpfd's control socket")
	return append(cmds, appctl)
}

func callDaemon(ctx context.Context, target, command string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := unixctl.Call(ctx, target, command, args...)
	var ce *unixctl.CommandError
	if errors.As(err, &ce) {
		fmt.Fprintln(os.Stderr, ce.Text)
		return exitError{2}
	}
	if err != nil {
		return err
	}
	fmt.Print(out)
	return nil
}
