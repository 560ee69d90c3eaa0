package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

type traceFlags struct {
	db                         dbFlags
	ct                         []string
	lbDst                      string
	selectID                   uint16
	minimal, summary, detailed bool
	asJSON                     bool
}

func newTraceCommand() *cobra.Command {
	var f traceFlags
	cmd := &cobra.Command{
		Use:   "trace [flags] [DATAPATH] MICROFLOW",
		Short: "Trace a packet through the logical pipeline, as ovn-trace does",
		Long: `trace runs one packet through the logical pipeline that ovsbpf builds from the
Southbound database and prints what happens to it, in ovn-trace's formats.

DATAPATH names a logical switch or router (its name, or a UUID prefix of at
least 4 digits); without it, the datapath of the microflow's inport is used.
MICROFLOW describes the packet in the logical flow match language, e.g.

  inport == "vm1" && eth.src == 00:00:00:00:00:01 && eth.dst == 00:00:00:00:00:02 &&
  ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && tcp.dst == 80

Fields not mentioned are 0, so give ip.ttl for IP packets.

Connection tracking answers est|trk unless --ct says otherwise: each --ct
gives the state the next ct action returns (flags new, est, rel, rpl, inv,
trk, snat, dnat, separated by commas; trk is implied). A load balancer picks
the backend --lb-dst names, or else the first one.`,
		Example: `  ovsbpfctl trace --db unix:/run/ovn/ovnsb_db.sock --minimal sw0 'inport == "vm1" && eth.src == 00:00:00:00:00:01 && eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && arp.sha == 00:00:00:00:00:01 && arp.spa == 10.0.0.1 && arp.tpa == 10.0.0.2'
  ovsbpfctl trace --ct new --ct est sw0 '...'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error { return runTrace(cmd, &f, args) },
	}
	f.db.register(cmd)
	f.db.warnSkipped = true
	fl := cmd.Flags()
	fl.StringArrayVar(&f.ct, "ct", nil, "connection state the next ct action returns (repeatable), e.g. new or est,rpl")
	fl.StringVar(&f.lbDst, "lb-dst", "", "backend IP[:PORT] a load balancer chooses ([IPv6]:PORT for IPv6)")
	fl.Uint16Var(&f.selectID, "select-id", 0, "member id select() chooses")
	fl.BoolVar(&f.minimal, "minimal", false, "print only what happens to the packet")
	fl.BoolVar(&f.summary, "summary", false, "print the actions, nested by pipeline")
	fl.BoolVar(&f.detailed, "detailed", false, "print every table the packet visits (the default)")
	fl.BoolVar(&f.asJSON, "json", false, "print the outputs and the packets as they leave, as JSON")
	return cmd
}

// parseCTFlags parses a --ct value: conntrack state flag names separated
// by commas, spaces, '|' or '+'. trk is always set, as in ovn-trace.
func parseCTFlags(s string) (uint32, error) {
	state := uint32(field.CSTrk)
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '|' || r == '+' }) {
		bit := field.CTStateBit(name)
		if bit == 0 {
			return 0, fmt.Errorf("--ct %q: %s: unknown connection tracking state flag (want new, est, rel, rpl, inv, trk, snat or dnat)", s, name)
		}
		state |= bit
	}
	return state, nil
}

// parseLBDst parses IP, IP:PORT or [IPv6]:PORT.
func parseLBDst(s string) (*ovn.LBDst, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return &ovn.LBDst{Addr: ap.Addr().Unmap(), Port: ap.Port()}, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return nil, fmt.Errorf("--lb-dst %q: bad address (want IP, IP:PORT or [IPv6]:PORT)", s)
	}
	return &ovn.LBDst{Addr: a.Unmap()}, nil
}

func runTrace(cmd *cobra.Command, f *traceFlags, args []string) error {
	req := ovn.TraceRequest{Microflow: args[len(args)-1]}
	if len(args) == 2 {
		req.Datapath = args[0]
	}
	for _, s := range f.ct {
		st, err := parseCTFlags(s)
		if err != nil {
			return err
		}
		req.Options.CTStates = append(req.Options.CTStates, st)
	}
	if f.lbDst != "" {
		d, err := parseLBDst(f.lbDst)
		if err != nil {
			return err
		}
		req.Options.LBDst = d
	}
	req.Options.SelectID = f.selectID

	tr, err := f.db.load(cmd.Context())
	if err != nil {
		return err
	}
	res, err := tr.Trace(req)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		return writeTraceJSON(out, res)
	}
	fmt.Fprintf(out, "# %s\n", res.Flow)
	styles := []struct {
		on     bool
		header string
		print  func([]*trace.Node) string
	}{
		{f.detailed, "# Detailed trace.", trace.Detailed},
		{f.summary, "# Summary trace.", trace.Summary},
		{f.minimal, "# Minimal trace.", trace.Minimal},
	}
	n := 0
	for _, s := range styles {
		if s.on {
			n++
		}
	}
	if n == 0 {
		styles[0].on = true
	}
	for _, s := range styles {
		if !s.on {
			continue
		}
		if n > 1 {
			fmt.Fprintln(out, s.header)
		}
		fmt.Fprint(out, s.print(res.Trace))
	}
	return nil
}

type jsonOutput struct {
	Port   string            `json:"port"`
	Packet string            `json:"packet"`
	Fields map[string]string `json:"fields"`
}

type jsonTrace struct {
	Packet  string       `json:"packet"`
	Outputs []jsonOutput `json:"outputs"`
	Errors  []string     `json:"errors"`
	// Megaflow lists, per field, the bits of the packet the pipeline read.
	Megaflow map[string]string `json:"megaflow"`
	Trace    []*jsonNode       `json:"trace"`
}

type jsonNode struct {
	Kind     string      `json:"kind"`
	Text     string      `json:"text"`
	Children []*jsonNode `json:"children,omitempty"`
}

var kindNames = map[trace.Kind]string{
	trace.Output: "output", trace.Modify: "modify", trace.Action: "action", trace.Error: "error",
	trace.Pipeline: "pipeline", trace.Table: "table", trace.Transformation: "transformation",
}

func toJSONNodes(nodes []*trace.Node) []*jsonNode {
	out := make([]*jsonNode, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, &jsonNode{Kind: kindNames[n.Kind], Text: n.Text, Children: toJSONNodes(n.Children)})
	}
	return out
}

// packetFields lists the header fields of k that are set, by name.
func packetFields(k *field.Key) map[string]string {
	m := map[string]string{}
	for _, d := range field.All() {
		if field.IsRegister(d.ID) {
			continue
		}
		if v := k.Get(d.ID); !v.IsZero() {
			m[d.Name] = field.FormatValue(d.ID, v)
		}
	}
	return m
}

// megaflowFields returns one field per storage area of the field set, named
// as the packet's protocol names it (tcp_src for TCP, icmp_type for ICMP,
// arp_spa for ARP), so that a mask is listed once.
func megaflowFields(pkt *field.Key) []*field.Desc {
	type storage struct{ off, size, shift int }
	chosen := map[storage]*field.Desc{}
	var order []storage
	all := field.All()
	for i := range all {
		d := &all[i]
		if field.IsRegister(d.ID) && d.Bits != 32 {
			continue // registers are listed as 32-bit regs
		}
		s := storage{d.Off, d.Size, d.Shift}
		cur, seen := chosen[s]
		switch {
		case !seen:
			chosen[s] = d
			order = append(order, s)
		case !pkt.PrereqOK(cur.Prereq) && pkt.PrereqOK(d.Prereq):
			chosen[s] = d
		}
	}
	out := make([]*field.Desc, 0, len(order))
	for _, s := range order {
		out = append(out, chosen[s])
	}
	return out
}

func writeTraceJSON(w io.Writer, res *ovn.TraceResult) error {
	jt := jsonTrace{Packet: res.Flow, Errors: res.Errors, Megaflow: map[string]string{}, Trace: toJSONNodes(res.Trace)}
	if jt.Errors == nil {
		jt.Errors = []string{}
	}
	jt.Outputs = []jsonOutput{}
	for _, d := range res.Outputs {
		k := d.Key
		jt.Outputs = append(jt.Outputs, jsonOutput{Port: d.Port, Packet: ovn.FormatFlow(&k), Fields: packetFields(&k)})
	}
	for _, d := range megaflowFields(&res.Packet) {
		if m := res.Mask.Get(d.ID); !m.IsZero() {
			jt.Megaflow[d.Name] = m.Hex()
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jt)
}
