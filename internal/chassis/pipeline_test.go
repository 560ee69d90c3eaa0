package chassis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/upcall"
)

const (
	mac1 = "0a:00:00:00:00:01"
	mac2 = "0a:00:00:00:00:02"
	mac3 = "0a:00:00:00:00:03"
	// ctAddr is an address whose packets the ACL stage sends through
	// conntrack.
	ctAddr = "10.0.0.77"
)

// lflow is a logical flow of datapath dp.
func lflow(dp string, n int, pipeline string, table, prio int, match, actions string) ovn.LogicalFlow {
	h := fnv.New64a()
	h.Write([]byte(dp))
	return ovn.LogicalFlow{UUID: fmt.Sprintf("%08x-0000-0000-0000-%012x", n, h.Sum64()&(1<<48-1)), Datapath: dp, Pipeline: pipeline,
		TableID: table, Priority: prio, Match: match, Actions: actions}
}

// oneSwitch is logical switch sw0 with ports p1, p2 and p3, as ovn-northd
// would write its flows (simplified): an ACL stage that sends packets to
// ctAddr through conntrack, an L2 lookup, and an egress that outputs.
// toP2 is the action of the L2 lookup for p2's MAC.
func oneSwitch(toP2 string) *ovn.Southbound {
	dp := "dp0"
	return &ovn.Southbound{
		Datapaths: []ovn.Datapath{{UUID: dp, TunnelKey: 1, ExternalIDs: map[string]string{"name": "sw0"}}},
		Ports: []ovn.Port{
			{UUID: "pb1", Name: "p1", Datapath: dp, TunnelKey: 1, MAC: []string{mac1 + " 10.0.0.1"}},
			{UUID: "pb2", Name: "p2", Datapath: dp, TunnelKey: 2, MAC: []string{mac2 + " 10.0.0.2"}},
			{UUID: "pb3", Name: "p3", Datapath: dp, TunnelKey: 3, MAC: []string{mac3 + " 10.0.0.3"}},
		},
		MulticastGroups: []ovn.MulticastGroup{{UUID: "mc1", Name: "_MC_flood", Datapath: dp, TunnelKey: 32768, Ports: []string{"pb1", "pb2", "pb3"}}},
		LogicalFlows: []ovn.LogicalFlow{
			lflow(dp, 1, "ingress", 0, 100, "ip4 && ip4.dst == "+ctAddr, "ct_next;"),
			lflow(dp, 2, "ingress", 0, 0, "1", "next;"),
			lflow(dp, 3, "ingress", 1, 70, "eth.mcast", `outport = "_MC_flood"; output;`),
			lflow(dp, 4, "ingress", 1, 50, "eth.dst == "+mac2, toP2),
			lflow(dp, 5, "ingress", 1, 50, "eth.dst == "+mac3, `outport = "p3"; output;`),
			lflow(dp, 6, "ingress", 1, 0, "1", "drop;"),
			lflow(dp, 7, "egress", 0, 0, "1", "output;"),
		},
	}
}

const toP2 = `outport = "p2"; output;`

// manySwitches is oneSwitch(toSw0P2) and n more switches of flows
// switches flows each: a Southbound whose load takes long.
func manySwitches(toSw0P2 string, switches, flows int) *ovn.Southbound {
	sb := oneSwitch(toSw0P2)
	for i := 1; i <= switches; i++ {
		dp := fmt.Sprintf("dp%d", i)
		sb.Datapaths = append(sb.Datapaths, ovn.Datapath{UUID: dp, TunnelKey: i + 1, ExternalIDs: map[string]string{"name": fmt.Sprintf("sw%d", i)}})
		sb.Ports = append(sb.Ports, ovn.Port{UUID: "pb-" + dp, Name: "port-" + dp, Datapath: dp, TunnelKey: 1})
		for j := 0; j < flows; j++ {
			sb.LogicalFlows = append(sb.LogicalFlows, lflow(dp, j, "ingress", 1, 50,
				fmt.Sprintf("eth.dst == 0a:%02x:%02x:00:00:01 && ip4.src == 10.%d.%d.0/24 && tcp.dst == %d", i>>8, i&0xff, i&0xff, j&0xff, 1000+j),
				fmt.Sprintf(`reg0[%d] = 1; outport = "port-%s"; output;`, j%16, dp)))
		}
		sb.LogicalFlows = append(sb.LogicalFlows, lflow(dp, flows, "egress", 0, 0, "1", "output;"))
	}
	return sb
}

// pkt is an IPv4 packet from port in (a datapath port) to dst.
func pkt(in uint16, dst, ipDst string) field.Key {
	var k field.Key
	hw := func(s string) field.Value {
		m, err := net.ParseMAC(s)
		if err != nil {
			panic(err)
		}
		return field.FromBytes(m)
	}
	k.Set(field.InPort, field.U64(uint64(in)))
	k.Set(field.EthSrc, hw(mac1))
	k.Set(field.EthDst, hw(dst))
	k.Set(field.EthType, field.U64(0x0800))
	k.Set(field.IPv4Src, field.FromBytes(netip.MustParseAddr("10.0.0.1").AsSlice()))
	k.Set(field.IPv4Dst, field.FromBytes(netip.MustParseAddr(ipDst).AsSlice()))
	k.Set(field.IPProto, field.U64(17))
	k.Set(field.IPTTL, field.U64(64))
	return k
}

func ports(d upcall.Decision) []uint16 {
	var out []uint16
	for _, o := range d.Outputs {
		out = append(out, o.Port)
	}
	return out
}

func TestPipelineBeforeLoad(t *testing.T) {
	p := NewPipeline(nil)
	require.True(t, p.SetBindings(map[uint16]string{1: "p1"}))
	_, err := p.Process(pkt(1, mac2, "10.0.0.2"))
	require.ErrorIs(t, err, ErrNotLoaded)
	require.ErrorIs(t, err, upcall.ErrNotReady, "the revalidator judges no flow by it")
	require.Nil(t, p.Skipped())
}

func TestPipelineDecisions(t *testing.T) {
	p := NewPipeline(nil)
	require.NoError(t, p.Load(oneSwitch(toP2)))
	require.True(t, p.SetBindings(map[uint16]string{1: "p1", 2: "p2"}), "p3 is bound to no datapath port here")

	tests := []struct {
		name    string
		pkt     field.Key
		outputs []uint16
		remote  uint64 // outputs to ports not on this chassis
		freezes bool   // stops at a conntrack action
	}{
		{"to a bound port", pkt(1, mac2, "10.0.0.2"), []uint16{2}, 0, false},
		{"back the other way", pkt(2, mac1, "10.0.0.1"), nil, 0, false}, // no L2 entry for mac1: dropped
		{"to a port bound elsewhere", pkt(1, mac3, "10.0.0.3"), nil, 1, false},
		{"broadcast", pkt(1, "ff:ff:ff:ff:ff:ff", "10.0.0.255"), []uint16{2}, 1, false},
		{"from an unbound datapath port", pkt(7, mac2, "10.0.0.2"), nil, 0, false},
		{"through conntrack", pkt(1, mac2, ctAddr), nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.Stats()
			d, err := p.Process(tt.pkt)
			require.NoError(t, err)
			require.Equal(t, tt.outputs, ports(d))
			require.Equal(t, field.Ones(32), d.Mask.Get(field.InPort), "every decision reads the input port")
			after := p.Stats()
			require.Equal(t, tt.remote, after.RemoteOutputs-before.RemoteOutputs, "outputs to unbound ports counted")
			require.Empty(t, d.NoCache)
			if tt.freezes {
				require.NotNil(t, d.Freeze, "the packet goes through conntrack and comes back")
				require.False(t, d.Freeze.CT.Commit, "ct_next looks up without committing")
			} else {
				require.Nil(t, d.Freeze)
			}
		})
	}
	d, err := p.Process(pkt(1, mac2, "10.0.0.2"))
	require.NoError(t, err)
	require.Equal(t, field.Ones(48), d.Mask.Get(field.EthDst), "the L2 lookup read eth.dst")
	require.Equal(t, 2, p.Stats().Bindings)
}

func TestPipelineVersionMovesOnEveryChange(t *testing.T) {
	p := NewPipeline(nil)
	v := p.Version()
	moved := func(what string) {
		t.Helper()
		require.Greater(t, p.Version(), v, what)
		v = p.Version()
	}
	require.NoError(t, p.Load(oneSwitch(toP2)))
	moved("load")
	require.True(t, p.SetBindings(map[uint16]string{1: "p1", 2: "p2"}))
	moved("new bindings")
	require.False(t, p.SetBindings(map[uint16]string{1: "p1", 2: "p2"}))
	require.Equal(t, v, p.Version(), "the same bindings change nothing")

	// An incremental change: p2's MAC now drops.
	require.NoError(t, p.Apply(&ovn.Change{Updated: ovn.Southbound{LogicalFlows: []ovn.LogicalFlow{lflow("dp0", 4, "ingress", 1, 50, "eth.dst == "+mac2, "drop;")}}}))
	moved("incremental apply")
	d, err := p.Process(pkt(1, mac2, "10.0.0.2"))
	require.NoError(t, err)
	require.Empty(t, d.Outputs)

	// A change that rebuilds (a new datapath), built off the lock.
	require.NoError(t, p.Apply(&ovn.Change{Updated: ovn.Southbound{
		Datapaths:    []ovn.Datapath{{UUID: "dp9", TunnelKey: 9, ExternalIDs: map[string]string{"name": "sw9"}}},
		LogicalFlows: []ovn.LogicalFlow{lflow("dp0", 4, "ingress", 1, 50, "eth.dst == "+mac2, toP2)},
	}}))
	moved("rebuilding apply")
	d, err = p.Process(pkt(1, mac2, "10.0.0.2"))
	require.NoError(t, err)
	require.Equal(t, []uint16{2}, ports(d))
	require.Equal(t, 2, p.Stats().Bindings, "a rebuild keeps the bindings")
}

// gateHandler is a slog handler that, once armed, holds the goroutine that
// logs message msg until released: it stops a Load between building the
// translator and publishing it.
type gateHandler struct {
	msg     string
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (h *gateHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *gateHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *gateHandler) WithGroup(string) slog.Handler            { return h }
func (h *gateHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg && h.armed.CompareAndSwap(true, false) {
		close(h.reached)
		select {
		case <-h.release:
		case <-time.After(time.Minute):
		}
	}
	return nil
}

// Handlers keep deciding, with the pipeline they had, while a full load
// of a large Southbound runs: the load is held after its build until a
// handler has made many decisions, which could not happen if the load
// held a lock that Process takes.
func TestProcessAnswersDuringAFullLoad(t *testing.T) {
	gate := &gateHandler{msg: "logical pipeline built", reached: make(chan struct{}), release: make(chan struct{})}
	p := NewPipeline(slog.New(gate))
	require.NoError(t, p.Load(oneSwitch(toP2)))
	p.SetBindings(map[uint16]string{1: "p1", 2: "p2"})
	version := p.Version()

	// The new Southbound drops what went to p2 and has 300 more
	// switches of 40 flows each.
	big := manySwitches("drop;", 300, 40)
	gate.armed.Store(true)
	loaded := make(chan error, 1)
	var during atomic.Int64 // decisions completed while Load ran
	var loading atomic.Bool
	loading.Store(true)
	rd := startReaders(p, func(d upcall.Decision) error {
		if loading.Load() {
			if len(d.Outputs) != 1 {
				return errors.New("a decision during the load was not the old pipeline's")
			}
			during.Add(1)
		}
		return nil
	})
	go func() { loaded <- p.Load(big) }()
	select {
	case <-gate.reached:
	case err := <-loaded:
		t.Fatalf("the load finished without building a translator: %v", err)
	}
	// Wait for progress, not for time: many decisions while the
	// built translator is not published yet.
	const want = 500
	deadline := time.After(time.Minute)
	for during.Load() < want && rd.failed() == nil {
		select {
		case <-deadline:
			t.Fatalf("only %d decisions completed while the load ran: handlers stall", during.Load())
		default:
			time.Sleep(time.Millisecond)
		}
	}
	require.NoError(t, rd.failed())
	require.Equal(t, version, p.Version(), "nothing published before the load is done")
	loading.Store(false)
	close(gate.release)
	require.NoError(t, <-loaded)
	require.NoError(t, rd.halt())
	require.Greater(t, p.Version(), version)
	d, err := p.Process(pkt(1, mac2, "10.0.0.2"))
	require.NoError(t, err)
	require.Empty(t, d.Outputs, "the new pipeline decides once published")
	require.Equal(t, len(big.LogicalFlows), p.cur.Load().tr.tr.Stats().LogicalFlows)
	t.Logf("%d decisions while a load of %d logical flows ran", during.Load(), len(big.LogicalFlows))
}

// Readers running while incremental changes apply see the pipeline before
// or after each change, never between (the race detector checks the
// rest).
func TestIncrementalApplyIsAtomicForReaders(t *testing.T) {
	p := NewPipeline(nil)
	require.NoError(t, p.Load(oneSwitch(toP2)))
	p.SetBindings(map[uint16]string{1: "p1", 2: "p2", 3: "p3"})
	var decisions atomic.Int64
	rd := startReaders(p, func(d upcall.Decision) error {
		if got := ports(d); len(got) != 1 || (got[0] != 2 && got[0] != 3) {
			return fmt.Errorf("outputs %v: neither before nor after a change", got)
		}
		decisions.Add(1)
		return nil
	})
	for i := range 50 {
		act := toP2
		if i%2 == 0 {
			act = `outport = "p3"; output;`
		}
		require.NoError(t, p.Apply(&ovn.Change{Updated: ovn.Southbound{LogicalFlows: []ovn.LogicalFlow{lflow("dp0", 4, "ingress", 1, 50, "eth.dst == "+mac2, act)}}}))
	}
	for decisions.Load() < 100 && rd.failed() == nil {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, rd.halt())
}

// readers decide one packet from port 1 in two goroutines, over and over,
// until halted, handing each decision to check; the first error (of
// Process or of check) ends them.
type readers struct {
	stop chan struct{}
	wg   sync.WaitGroup
	err  atomic.Pointer[error]
}

func startReaders(p *Pipeline, check func(upcall.Decision) error) *readers {
	r := &readers{stop: make(chan struct{})}
	for range 2 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case <-r.stop:
					return
				default:
				}
				d, err := p.Process(pkt(1, mac2, "10.0.0.2"))
				if err == nil {
					err = check(d)
				}
				if err != nil {
					r.err.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	return r
}

// failed returns the first error so far, if any.
func (r *readers) failed() error {
	if e := r.err.Load(); e != nil {
		return *e
	}
	return nil
}

// halt stops the readers and returns the first error.
func (r *readers) halt() error {
	close(r.stop)
	r.wg.Wait()
	return r.failed()
}

// BenchmarkApplyOneFlow is how long an incremental change holds the
// translator's lock (what handlers may wait) on the Southbound of
// TestProcessAnswersDuringAFullLoad, beside BenchmarkLoad, which handlers
// no longer wait for.
func BenchmarkApplyOneFlow(b *testing.B) {
	p := NewPipeline(nil)
	require.NoError(b, p.Load(manySwitches(toP2, 300, 40)))
	acts := []string{toP2, "drop;"}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		require.NoError(b, p.Apply(&ovn.Change{Updated: ovn.Southbound{LogicalFlows: []ovn.LogicalFlow{
			lflow("dp0", 4, "ingress", 1, 50, "eth.dst == "+mac2, acts[i%2])}}}))
	}
}

func BenchmarkLoad(b *testing.B) {
	sb := manySwitches(toP2, 300, 40)
	p := NewPipeline(nil)
	for b.Loop() {
		require.NoError(b, p.Load(sb))
	}
}
