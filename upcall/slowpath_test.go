package upcall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/internal/netns"
	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

// l2Pipeline is a learning-free switch: a MAC table, and a flood of
// everything else to every port but the input.
type l2Pipeline struct {
	mu      sync.Mutex
	macs    map[[6]byte]uint16
	ports   []uint16
	version atomic.Uint64
	readSrc atomic.Bool // also read eth.src (and decide nothing new by it)
}

func (p *l2Pipeline) Version() uint64 { return p.version.Load() }

func (p *l2Pipeline) Process(pkt field.Key) (Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d Decision
	d.Mask.AddField(field.InPort, field.Ones(32))
	d.Mask.AddField(field.EthDst, field.Ones(48))
	if p.readSrc.Load() {
		d.Mask.AddField(field.EthSrc, field.Ones(48))
	}
	in := uint16(pkt.Get(field.InPort).Lo)
	dst := [6]byte(storage(&pkt, field.EthDst))
	if port, ok := p.macs[dst]; ok {
		if port != in {
			d.Outputs = append(d.Outputs, Output{Port: port, Key: pkt})
		}
		return d, nil
	}
	if dst[0]&1 == 0 {
		return d, nil // unknown unicast: drop
	}
	for _, port := range p.ports {
		if port != in {
			d.Outputs = append(d.Outputs, Output{Port: port, Key: pkt})
		}
	}
	return d, nil
}

// Resume is never called: the switch has no conntrack, so it never
// freezes.
func (p *l2Pipeline) Resume(state any, pkt field.Key) (Decision, error) {
	return Decision{}, fmt.Errorf("l2Pipeline cannot resume %v: it never freezes", state)
}

func (p *l2Pipeline) set(mac net.HardwareAddr, port uint16) {
	p.mu.Lock()
	if port == 0 {
		delete(p.macs, [6]byte(mac))
	} else {
		p.macs[[6]byte(mac)] = port
	}
	p.mu.Unlock()
	p.version.Add(1)
}

type chassisRig struct {
	chassis *netns.NS
	vms     []*netns.NS
	macs    []net.HardwareAddr
	caps    []*netns.Capture
	dp      *datapath.Datapath
	sp      *Slowpath
	pipe    *l2Pipeline
}

// newChassisRig brings up a chassis namespace with three VMs on datapath
// ports 1..3 and a slow path over an l2Pipeline.
func newChassisRig(t *testing.T, cfg Config) *chassisRig { return newChassisRigOf(t, cfg, 3) }

// newChassisRigOf is newChassisRig with n VMs, on ports 1..n.
func newChassisRigOf(t *testing.T, cfg Config, n int) *chassisRig {
	r := &chassisRig{chassis: netns.New(t, "ovsbpf-chassis"), pipe: &l2Pipeline{macs: map[[6]byte]uint16{}}}
	for i := 1; i <= n; i++ {
		r.pipe.ports = append(r.pipe.ports, uint16(i))
	}
	dp, err := datapath.Open(datapath.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { dp.Close() })
	r.dp = dp
	for i := 1; i <= n; i++ {
		host := fmt.Sprintf("h%d", i)
		vm := netns.AddVM(t, r.chassis, host)
		mac, err := vm.MAC("eth0")
		require.NoError(t, err)
		r.vms, r.macs = append(r.vms, vm), append(r.macs, mac)
		r.caps = append(r.caps, netns.NewCapture(t, vm, "eth0"))
		idx, err := r.chassis.Ifindex(host)
		require.NoError(t, err)
		require.NoError(t, r.chassis.Do(func() error {
			return dp.AddPort(datapath.Port{No: uint16(i), Ifindex: idx, Name: host, Peer: true})
		}))
		r.pipe.macs[[6]byte(mac)] = uint16(i)
	}
	cfg.Datapath, cfg.Pipeline, cfg.Handlers = dp, r.pipe, 2
	cfg.HandlerThread = r.chassis.Enter
	r.sp, err = New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.sp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	return r
}

// frame is a UDP packet from VM i to VM j (0-based).
func (r *chassisRig) frame(t *testing.T, i int, dst net.HardwareAddr) []byte {
	return testframe.Serialize(t, &layers.Ethernet{SrcMAC: r.macs[i], DstMAC: dst, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: net.IPv4(10, 0, 0, byte(i+1)), DstIP: net.IPv4(10, 0, 0, 99)},
		&layers.UDP{SrcPort: 1000, DstPort: 2000}, gopacket.Payload("hello"))
}

func (r *chassisRig) send(t *testing.T, i int, f []byte, n int) {
	require.NoError(t, r.vms[i].Send("eth0", f, n))
}

func (r *chassisRig) misses(t *testing.T) uint64 {
	c, err := r.dp.Counters()
	require.NoError(t, err)
	return c.Misses
}

func TestSlowPathDeliversFirstPacketThenCaches(t *testing.T) {
	r := newChassisRig(t, Config{})
	f := r.frame(t, 0, r.macs[1])

	r.send(t, 0, f, 1)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 1, "the packet that missed is delivered")
	require.Equal(t, uint64(1), r.misses(t))

	r.send(t, 0, f, 20)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 20)
	require.Equal(t, uint64(1), r.misses(t), "later packets hit the cache")
	require.Empty(t, r.caps[2].From(r.macs[0], 50*time.Millisecond), "vm3 sees nothing")

	flows, err := r.dp.Flows()
	require.NoError(t, err)
	require.Len(t, flows, 1)
	require.Equal(t, "recirc_id(0),in_port(1),eth(dst="+r.macs[1].String()+")", datapath.FormatFlow(&flows[0].Key, &flows[0].Mask))
	require.Equal(t, uint64(20), flows[0].Stats.Packets)

	// Broadcast goes to both other VMs, once each.
	bc := r.frame(t, 0, layers.EthernetBroadcast)
	r.send(t, 0, bc, 1)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 1)
	require.Len(t, r.caps[2].From(r.macs[0], 50*time.Millisecond), 1)

	st := r.sp.Stats()
	require.Equal(t, uint64(2), st.Installed)
	require.Equal(t, uint64(2), st.Delivered)
	require.Equal(t, 2, st.LatencySamples)
	require.NotZero(t, st.LatencyP50)
	require.Equal(t, 2, st.Ukeys)

	// dpctl/del-flows: the flows and the slow path's memory of them go.
	require.Equal(t, 2, r.sp.DeleteFlows())
	require.Zero(t, r.dp.FlowCount())
	require.Zero(t, r.sp.Stats().Ukeys)
	r.send(t, 0, f, 1)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 1)
	require.Equal(t, uint64(3), r.misses(t), "a deleted flow misses again")
	require.Equal(t, 1, r.sp.Stats().Ukeys)
}

// A broadcast on a switch of 12 ports floods to 11, more than one action
// block holds: the slow path caches it like any other decision, and the
// next broadcast is a cache hit that reaches every VM.
func TestFloodBeyondOneBlockIsCachedAndHit(t *testing.T) {
	const vms = 12
	r := newChassisRigOf(t, Config{}, vms)
	bc := r.frame(t, 0, layers.EthernetBroadcast)

	r.send(t, 0, bc, 1)
	require.Eventually(t, func() bool { return r.dp.FlowCount() == 1 }, 2*time.Second, 10*time.Millisecond)
	flows, err := r.dp.Flows()
	require.NoError(t, err)
	require.Len(t, flows[0].Actions, vms-1, "one output per other port, %d more than a block", vms-1-datapath.BlockActions)
	require.Equal(t, uint64(1), r.misses(t))

	r.send(t, 0, bc, 5)
	for i := 1; i < vms; i++ {
		require.Len(t, r.caps[i].From(r.macs[0], 200*time.Millisecond), 6, "vm%d: the first copy from the slow path, 5 from the cache", i+1)
	}
	require.Equal(t, uint64(1), r.misses(t), "later broadcasts hit the cache")
	flows, err = r.dp.Flows()
	require.NoError(t, err)
	require.Equal(t, uint64(5), flows[0].Stats.Packets)
	st := r.sp.Stats()
	require.Equal(t, uint64(1), st.Installed)
	require.Zero(t, st.Uncacheable)
	require.Zero(t, st.DeliveryErrors)
	c, err := r.dp.Counters()
	require.NoError(t, err)
	require.Zero(t, c.ActionErrors)
}

func TestRevalidatorFollowsPipelineChanges(t *testing.T) {
	r := newChassisRig(t, Config{})
	f := r.frame(t, 0, r.macs[1])
	r.send(t, 0, f, 1)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 1)

	// vm2's MAC moves to port 3: the cached flow is rewritten.
	r.pipe.set(r.macs[1], 3)
	r.sp.PipelineChanged()
	r.waitActions(t, "3")
	r.send(t, 0, f, 3)
	require.Len(t, r.caps[2].From(r.macs[0], 300*time.Millisecond), 3)
	require.Empty(t, r.caps[1].From(r.macs[0], 50*time.Millisecond))

	// The MAC goes away: unknown unicast drops, and so must the cache.
	r.pipe.set(r.macs[1], 0)
	r.sp.PipelineChanged()
	r.waitActions(t, "drop")
	r.send(t, 0, f, 2)
	require.Empty(t, r.caps[2].From(r.macs[0], 200*time.Millisecond))
	require.Equal(t, uint64(1), r.misses(t), "the drop is cached too")

	// A pipeline that now reads more than the flow matches on (here the
	// source MAC) makes the revalidator delete the flow.
	r.pipe.readSrc.Store(true)
	r.pipe.version.Add(1)
	r.sp.PipelineChanged()
	require.Eventually(t, func() bool { return r.dp.FlowCount() == 0 }, 2*time.Second, 10*time.Millisecond)
	require.NotZero(t, r.sp.Stats().RevalidatedAway)
}

func (r *chassisRig) waitActions(t *testing.T, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		flows, err := r.dp.Flows()
		return err == nil && len(flows) == 1 && datapath.FormatActions(flows[0].Actions) == want
	}, 2*time.Second, 10*time.Millisecond, "the cached flow's actions become %s", want)
}

func TestIdleFlowsExpire(t *testing.T) {
	r := newChassisRig(t, Config{MaxIdle: 200 * time.Millisecond, RevalidateEvery: 50 * time.Millisecond})
	r.send(t, 0, r.frame(t, 0, r.macs[1]), 1)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 1)
	require.Eventually(t, func() bool { return r.dp.FlowCount() == 0 }, 2*time.Second, 20*time.Millisecond)
	require.NotZero(t, r.sp.Stats().Expired)
}

func TestFlowLimitKeepsDeliveringUncached(t *testing.T) {
	r := newChassisRig(t, Config{FlowLimit: 1})
	r.send(t, 0, r.frame(t, 0, r.macs[1]), 1)
	require.Len(t, r.caps[1].From(r.macs[0], 300*time.Millisecond), 1)
	r.send(t, 0, r.frame(t, 0, r.macs[2]), 2)
	require.Len(t, r.caps[2].From(r.macs[0], 300*time.Millisecond), 2, "past the limit packets still arrive")
	require.Equal(t, 1, r.dp.FlowCount())
	require.NotZero(t, r.sp.Stats().Uncacheable)
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrUncacheable))
}
