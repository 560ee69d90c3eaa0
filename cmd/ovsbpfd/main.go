// Command ovsbpfd is the ovsbpf chassis daemon: it takes the place of
// ovn-controller, ovs-vswitchd and the openvswitch kernel module. It binds
// the interfaces the local Open_vSwitch database names to logical ports,
// attaches the eBPF datapath to them, runs the OVN logical pipeline from
// the Southbound database as the slow path, and answers ovs-appctl-style
// commands on a control socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/internal/chassis"
	"github.com/ovsbpf/ovsbpf/internal/unixctl"
	"github.com/ovsbpf/ovsbpf/ovsdb"
	"github.com/ovsbpf/ovsbpf/upcall"
)

// DefaultControlSocket is where ovsbpfd listens unless told otherwise.
const DefaultControlSocket = "/var/run/ovsbpf/ovsbpfd.ctl"

type options struct {
	db, ovnRemote, control, pinPath, logLevel string
	handlers, flowLimit                       int
	maxIdle, busyPoll                         time.Duration
	disableEMC, destroyOnExit                 bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ovsbpfd:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "ovsbpfd",
		Short: "The ovsbpf chassis daemon: an eBPF datapath for OVN",
		Long: `ovsbpfd runs one OVN chassis on an eBPF datapath, in place of ovn-controller,
ovs-vswitchd and the openvswitch kernel module.

It reads the local Open_vSwitch database (--db) as ovs-vswitchd does: every
Interface with external_ids:iface-id=LPORT is attached to the datapath as a
port bound to logical port LPORT, and its ofport column is set to the
datapath port number. It reads the logical flows from the OVN Southbound
database (--ovn-remote, or the ovn-remote the local database names).

Packets from bound interfaces go through an eBPF megaflow cache; a miss goes
to the slow path, which runs the logical pipeline, installs a megaflow and
delivers the packet. ovsbpfd must run in the network namespace of the
interfaces it serves.

Control commands (ovs-appctl -t SOCKET COMMAND, or ovsbpfctl COMMAND):
  dpctl/dump-flows   megaflows with statistics, in ovs-dpctl syntax
  dpctl/del-flows    delete every megaflow
  dpif/show          datapath counters and ports
  upcall/show        slow-path counters and handler latency
  exit               stop the daemon (pinned forwarding state stays)`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "unix:/var/run/openvswitch/db.sock", "local Open_vSwitch database (unix:PATH or tcp:HOST:PORT)")
	f.StringVar(&o.ovnRemote, "ovn-remote", "", "OVN Southbound database; default: the local database's external_ids:ovn-remote")
	f.StringVar(&o.control, "unixctl", DefaultControlSocket, "control socket path")
	f.StringVar(&o.pinPath, "pin-path", datapath.DefaultPinPath, `bpffs directory to pin the datapath under, so forwarding outlives the daemon; "none" pins nothing`)
	f.BoolVar(&o.destroyOnExit, "destroy-on-exit", false, "detach every port and remove the pinned datapath on exit")
	f.IntVar(&o.handlers, "handlers", 0, "upcall handler goroutines (0: one per CPU)")
	f.IntVar(&o.flowLimit, "flow-limit", 0, fmt.Sprintf("most megaflows to cache; sizes the datapath's flow table at load (0: %d, Open vSwitch's default)", datapath.DefaultMaxFlows))
	f.DurationVar(&o.maxIdle, "max-idle", 10*time.Second, "delete megaflows unused this long")
	f.BoolVar(&o.disableEMC, "disable-emc", false, "turn the per-CPU exact-match cache off")
	f.DurationVar(&o.busyPoll, "upcall-busy-poll", 0, "spin this long for the next upcall before sleeping (a CPU for lower first-packet latency; 0: never)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// validate checks the flags before anything is created, so that a bad one
// leaves no pinned datapath or half-attached port behind, and returns the
// log level. Each error names the flag and the value.
func (o *options) validate() (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return level, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	if o.ovnRemote != "" {
		if err := ovsdb.CheckRemote(o.ovnRemote); err != nil {
			return level, fmt.Errorf("--ovn-remote: %w", err)
		}
	}
	switch {
	case o.handlers < 0 || o.handlers > datapath.MaxExecutors:
		return level, fmt.Errorf("--handlers %d: want 0 (one per CPU) to %d", o.handlers, datapath.MaxExecutors)
	case o.flowLimit < 0 || o.flowLimit > datapath.MaxFlowLimit:
		return level, fmt.Errorf("--flow-limit %d: want 0 (%d) to %d", o.flowLimit, datapath.DefaultMaxFlows, datapath.MaxFlowLimit)
	case o.maxIdle <= 0:
		return level, fmt.Errorf("--max-idle %s: must be positive", o.maxIdle)
	case o.busyPoll < 0:
		return level, fmt.Errorf("--upcall-busy-poll %s: must not be negative", o.busyPoll)
	case o.pinPath == "":
		return level, errors.New(`--pin-path "": give a bpffs directory, or "none" to pin nothing`)
	}
	return level, nil
}

func run(ctx context.Context, o options) error {
	level, err := o.validate()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	local, err := ovsdb.NewLocalMonitor(o.db, log.With("db", "local"))
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	pin := o.pinPath
	if pin == "none" {
		pin = ""
	}
	dp, err := datapath.Open(datapath.Config{PinPath: pin, DisableEMC: o.disableEMC, MaxFlows: o.flowLimit, Logger: log.With("part", "datapath")})
	if err != nil {
		return err
	}
	defer func() {
		if o.destroyOnExit {
			if err := dp.Destroy(); err != nil {
				log.Error("removing the datapath", "err", err)
			}
			return
		}
		dp.Close()
	}()

	pipe := chassis.NewPipeline(log.With("part", "pipeline"))
	sp, err := upcall.New(upcall.Config{Datapath: dp, Pipeline: pipe, Handlers: o.handlers, MaxIdle: o.maxIdle,
		FlowLimit: o.flowLimit, BusyPoll: o.busyPoll, Logger: log.With("part", "upcall")})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.control), 0o755); err != nil {
		return fmt.Errorf("creating the control socket's directory: %w", err)
	}
	ctl, err := unixctl.Listen(o.control, log.With("part", "unixctl"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &daemon{log: log, dp: dp, pipe: pipe, sp: sp, ports: chassis.NewPorts(dp, log.With("part", "ports")), local: local, exit: cancel}
	d.register(ctl)

	errc := make(chan error, 3)
	go func() { errc <- ctl.Serve(ctx) }()
	go func() { errc <- sp.Run(ctx) }()
	states := make(chan ovsdb.LocalState, 1)
	go func() { errc <- local.Run(ctx, states) }()
	log.Info("ovsbpfd started", "db", o.db, "control", o.control, "pin_path", pin)
	err = d.loop(ctx, o, states)
	cancel()
	for i := 0; i < 3; i++ {
		if e := <-errc; e != nil && !errors.Is(e, context.Canceled) && err == nil {
			err = e
		}
	}
	log.Info("ovsbpfd stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type daemon struct {
	log   *slog.Logger
	dp    *datapath.Datapath
	pipe  *chassis.Pipeline
	sp    *upcall.Slowpath
	ports *chassis.Ports
	local *ovsdb.LocalMonitor
	exit  func()

	zonesStored bool // the pipeline assigns zones (the integration bridge exists)
}

// storeZones returns what the pipeline calls with each change of the
// conntrack zones: a zone newly assigned is flushed first, as
// ovn-controller flushes it, so no connection of its last user lingers;
// then the change is written to the integration bridge's external_ids.
func (d *daemon) storeZones(ctx context.Context, bridge string) func(chassis.ZoneUpdate) error {
	return func(up chassis.ZoneUpdate) error {
		set := map[string]string{}
		for name, zone := range up.Assigned {
			z := zone
			if _, err := d.dp.Conntrack().Flush(&z); err != nil {
				return fmt.Errorf("flushing conntrack zone %d for %s: %w", zone, name, err)
			}
			set[chassis.ZoneKey(name)] = strconv.Itoa(int(zone))
		}
		var remove []string
		for _, name := range up.Released {
			remove = append(remove, chassis.ZoneKey(name))
		}
		return d.local.WriteBridgeExternalIDs(ctx, bridge, set, remove)
	}
}

// loop applies local database states and Southbound updates as they come.
func (d *daemon) loop(ctx context.Context, o options, states <-chan ovsdb.LocalState) error {
	var (
		sbRemote string
		sbCancel context.CancelFunc = func() {}
		sbDone   chan error
		updates  = make(chan ovsdb.Update, 16)
	)
	defer func() { sbCancel() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-states:
			if !d.zonesStored && st.BridgeUUID != "" {
				// Zones start from what the integration bridge
				// keeps, before any binding needs one.
				d.pipe.SetZoneStore(st.BridgeExternalIDs, d.storeZones(ctx, st.BridgeUUID))
				d.zonesStored = true
			}
			res := d.ports.Reconcile(st)
			if d.pipe.SetBindings(res.Bindings) {
				d.sp.PipelineChanged()
			}
			if err := d.local.Report(ctx, res.OFPorts, res.Errors, st.NextCfg); err != nil {
				d.log.Warn("cannot report to the local database", "err", err)
			}
			remote := o.ovnRemote
			if remote == "" {
				remote = st.OVNRemote
			}
			if remote != sbRemote {
				sbCancel()
				if sbDone != nil {
					<-sbDone
				}
				sbRemote = remote
				if remote == "" {
					d.log.Warn("no Southbound database: set external_ids:ovn-remote in the local database or pass --ovn-remote")
					sbDone = nil
					continue
				}
				mon, err := ovsdb.NewSouthboundMonitor(remote, d.log.With("db", "southbound"))
				if err != nil {
					d.log.Error("bad ovn-remote", "remote", remote, "err", err)
					sbDone = nil
					continue
				}
				sbCtx, stopSB := context.WithCancel(ctx)
				sbCancel = stopSB
				sbDone = make(chan error, 1)
				go func() { sbDone <- mon.Run(sbCtx, updates) }()
			}
		case u := <-updates:
			var err error
			if u.Full != nil {
				err = d.pipe.Load(u.Full)
			} else {
				err = d.pipe.Apply(u.Change)
			}
			if err != nil {
				d.log.Error("southbound update not applied", "err", err)
				continue
			}
			d.sp.PipelineChanged()
		}
	}
}

func (d *daemon) register(ctl *unixctl.Server) {
	ctl.Register("dpctl/dump-flows", "", 0, 0, func([]string) (string, error) {
		flows, err := d.dp.Flows()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for i := range flows {
			b.WriteString(flows[i].String())
			b.WriteByte('\n')
		}
		return b.String(), nil
	})
	ctl.Register("dpctl/del-flows", "", 0, 0, func([]string) (string, error) {
		// Through the slow path, which owns the megaflows: it forgets
		// them as it deletes them.
		n := d.sp.DeleteFlows()
		d.log.Info("all megaflows deleted from the control socket", "flows", n)
		return "", nil
	})
	ctl.Register("dpctl/dump-conntrack", "[zone=N]", 0, 1, func(args []string) (string, error) {
		zone, err := zoneArg(args)
		if err != nil {
			return "", err
		}
		entries, err := d.dp.Conntrack().Dump(zone)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, e := range entries {
			b.WriteString(e.String())
			b.WriteByte('\n')
		}
		return b.String(), nil
	})
	ctl.Register("dpctl/flush-conntrack", "[zone=N]", 0, 1, func(args []string) (string, error) {
		zone, err := zoneArg(args)
		if err != nil {
			return "", err
		}
		n, err := d.dp.Conntrack().Flush(zone)
		if err != nil {
			return "", err
		}
		d.log.Info("conntrack flushed from the control socket", "connections", n, "zone", args)
		return "", nil
	})
	ctl.Register("dpctl/ct-stats-show", "[-m] [zone=N]", 0, 2, func(args []string) (string, error) {
		verbose := len(args) > 0 && args[0] == "-m"
		if verbose {
			args = args[1:]
		}
		zone, err := zoneArg(args)
		if err != nil {
			return "", err
		}
		st, err := d.dp.Conntrack().Stats(zone)
		if err != nil {
			return "", err
		}
		return st.Format(verbose), nil
	})
	ctl.Register("dpif/show", "", 0, 0, func([]string) (string, error) { return d.dpifShow() })
	ctl.Register("upcall/show", "", 0, 0, func([]string) (string, error) { return d.upcallShow() })
	ctl.Register("exit", "", 0, 0, func([]string) (string, error) {
		d.log.Info("exit requested on the control socket")
		d.exit()
		return "", nil
	})
}

// zoneArg reads the optional zone=N argument of the dpctl conntrack
// commands, as ovs-appctl gives it.
func zoneArg(args []string) (*uint16, error) {
	if len(args) == 0 {
		return nil, nil
	}
	v, ok := strings.CutPrefix(args[0], "zone=")
	if !ok {
		return nil, fmt.Errorf("%q: expected zone=N", args[0])
	}
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%q: a zone is a number from 0 to 65535", args[0])
	}
	z := uint16(n)
	return &z, nil
}

func (d *daemon) dpifShow() (string, error) {
	c, err := d.dp.Counters()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	lookups := c.Lookups()
	probes := 0.0
	if c.MaskHits+c.Misses > 0 {
		probes = float64(c.MaskProbes) / float64(c.MaskHits+c.Misses)
	}
	fmt.Fprintf(&b, "ovsbpf@ovsbpf: hit:%d missed:%d\n", c.EMCHits+c.MaskHits, c.Misses)
	fmt.Fprintf(&b, "  flows: %d (max %d)\n", d.dp.FlowCount(), d.dp.MaxFlows())
	blocks, used := d.dp.ActionBlocks()
	fmt.Fprintf(&b, "  action blocks (lists past %d actions): %d of %d used\n", datapath.BlockActions, used, blocks)
	if mem, err := d.dp.MapMemory(); err == nil {
		fmt.Fprintf(&b, "  map memory: %s\n", mem)
	} else {
		fmt.Fprintf(&b, "  map memory: %v\n", err)
	}
	fmt.Fprintf(&b, "  masks: hit:%d total:%d hit/pkt:%.2f\n", c.MaskProbes, d.dp.MaskCount(), probes)
	fmt.Fprintf(&b, "  exact-match cache: hit:%d of %d lookups\n", c.EMCHits, lookups)
	fmt.Fprintf(&b, "  upcalls lost (ring full): %d\n", c.UpcallsLost)
	fmt.Fprintf(&b, "  packets from no port: %d\n", c.UnknownPort)
	fmt.Fprintf(&b, "  action errors: %d\n", c.ActionErrors)
	fmt.Fprintf(&b, "  recirculation limit: %d\n", c.RecircLimit)
	if len(c.Drops) > 0 {
		b.WriteString("  malformed packets dropped:")
		for _, r := range slices.Sorted(maps.Keys(c.Drops)) {
			fmt.Fprintf(&b, " %s:%d", r, c.Drops[r])
		}
		b.WriteByte('\n')
	}
	ps := d.pipe.Stats()
	for _, p := range d.dp.Ports() {
		fmt.Fprintf(&b, "  port %d: %s (ifindex %d)\n", p.No, p.Name, p.Ifindex)
	}
	fmt.Fprintf(&b, "  logical pipeline version %d, %d bound ports\n", ps.Version, ps.Bindings)
	return b.String(), nil
}

func (d *daemon) upcallShow() (string, error) {
	st := d.sp.Stats()
	c, err := d.dp.Counters()
	if err != nil {
		return "", err
	}
	ps := d.pipe.Stats()
	us := func(t time.Duration) string { return fmt.Sprintf("%.1fus", float64(t)/float64(time.Microsecond)) }
	var b strings.Builder
	fmt.Fprintf(&b, "ovsbpf:\n")
	fmt.Fprintf(&b, "  flows         : (current %d)\n", d.dp.FlowCount())
	fmt.Fprintf(&b, "  misses        : %d (upcall rate %.1f/s over 10 s)\n", c.Misses, st.RatePerSecond)
	fmt.Fprintf(&b, "  upcalls lost  : %d (ring full)\n", c.UpcallsLost)
	fmt.Fprintf(&b, "  handlers      : %d\n", st.Handlers)
	fmt.Fprintf(&b, "  handled       : %d upcalls, %d misses, %d other (ttl, controller: dropped)\n", st.Upcalls, st.Misses, st.OtherReasons)
	fmt.Fprintf(&b, "  installed     : %d megaflows, %d uncached decisions, %d install errors\n", st.Installed, st.Uncacheable, st.InstallErrors)
	fmt.Fprintf(&b, "  delivered     : %d packets (%d offloaded checksums completed), %d delivery errors, %d truncated\n",
		st.Delivered, st.ChecksumsCompleted, st.DeliveryErrors, st.Truncated)
	fmt.Fprintf(&b, "  dropped       : %d unsupported rewrites, %d pipeline errors, %d unsupported (NAT, forks), %d outputs to remote ports, %d before the pipeline was loaded\n",
		st.Unsupported, st.PipelineErrors, ps.Unsupported, ps.RemoteOutputs, st.NotReady)
	fmt.Fprintf(&b, "  revalidator   : %d sweeps, %d expired, %d changed away, %d rewritten, %d evicted, %d sweeps before the pipeline was loaded\n",
		st.Revalidations, st.Expired, st.RevalidatedAway, st.Rewritten, st.Evicted, st.NotReadySweeps)
	fmt.Fprintf(&b, "  ukeys         : %d\n", st.Ukeys)
	fmt.Fprintf(&b, "  recirculation : %d ids, %d conntrack parameter sets, %d packets back at an unknown id\n",
		st.RecircIDs, st.CTParams, st.RecircUnknown)
	if st.LatencySamples > 0 {
		fmt.Fprintf(&b, "  handler latency: p50 %s p90 %s p99 %s max %s (last %d upcalls)\n",
			us(st.LatencyP50), us(st.LatencyP90), us(st.LatencyP99), us(st.LatencyMax), st.LatencySamples)
		fmt.Fprintf(&b, "    of which waiting for a handler: p50 %s p99 %s\n", us(st.WaitP50), us(st.WaitP99))
		fmt.Fprintf(&b, "    deciding (pipeline): p50 %s p99 %s\n", us(st.DecideP50), us(st.DecideP99))
		fmt.Fprintf(&b, "    installing (megaflow): p50 %s p99 %s\n", us(st.InstallP50), us(st.InstallP99))
	} else {
		b.WriteString("  handler latency: no upcalls yet\n")
	}
	return b.String(), nil
}
