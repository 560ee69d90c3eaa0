package datapath

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// Verdicts a TC program returns, as Run reports them.
const (
	VerdictPass     = 0 // TC_ACT_OK: left to the kernel (not a port)
	VerdictDrop     = 2 // TC_ACT_SHOT
	VerdictRedirect = 7 // TC_ACT_REDIRECT: output to a port
)

// skbContext is the head of struct __sk_buff, as BPF_PROG_TEST_RUN takes
// it: only mark, priority, ingress_ifindex, ifindex and cb may be set.
type skbContext struct {
	_              [9]uint32 // len .. priority
	IngressIfindex uint32
	Ifindex        uint32
	TCIndex        uint32
	CB             [5]uint32
}

// MarshalBinary hands BPF_PROG_TEST_RUN the context as it lies in memory
// (all 32-bit fields, no padding), sparing the reflection cilium/ebpf
// would use for a plain struct on every delivered upcall.
func (c skbContext) MarshalBinary() ([]byte, error) {
	return unsafe.Slice((*byte)(unsafe.Pointer(&c)), unsafe.Sizeof(c)), nil
}

// RunResult is what the fast path did with one frame.
type RunResult struct {
	Verdict uint32 // VerdictRedirect, VerdictDrop or VerdictPass
	Frame   []byte // the frame after the actions ran
}

// Run passes frame through the fast path as if it had arrived on the
// interface ifindex, with BPF_PROG_TEST_RUN: lookups, statistics, counters
// and upcalls happen as for a real packet, but a redirect sends nothing.
// It is how tests and benchmarks drive the datapath without traffic.
func (d *Datapath) Run(frame []byte, ifindex uint32) (RunResult, error) {
	opts := &ebpf.RunOptions{
		Data:    frame,
		DataOut: make([]byte, len(frame)+256), // room for a pushed VLAN tag
		Context: skbContext{IngressIfindex: ifindex},
	}
	ret, err := d.objs.OvsbpfIngress.Run(opts)
	if err != nil {
		return RunResult{}, fmt.Errorf("test-running the fast path: %w", err)
	}
	return RunResult{Verdict: ret, Frame: opts.DataOut}, nil
}

// Benchmark runs frame through the fast path repeat times in one
// BPF_PROG_TEST_RUN call and returns the mean wall time per run.
func (d *Datapath) Benchmark(frame []byte, ifindex uint32, repeat int) (time.Duration, uint32, error) {
	return BenchmarkProgram(d.objs.OvsbpfIngress, frame, ifindex, repeat)
}

// BenchmarkProgram runs a TC program repeat times on frame, as arriving on
// ifindex, and returns the mean wall time per run and the last verdict.
// The kernel's own timing is not used because cilium/ebpf returns it only
// for runs without a context; with a million repeats the one syscall and
// skb set-up it adds are below a nanosecond per run. Compare programs only
// with figures from this same function.
func BenchmarkProgram(prog *ebpf.Program, frame []byte, ifindex uint32, repeat int) (time.Duration, uint32, error) {
	if repeat < 1 {
		return 0, 0, fmt.Errorf("repeat %d: must be at least 1", repeat)
	}
	opts := &ebpf.RunOptions{Data: frame, Context: skbContext{IngressIfindex: ifindex}, Repeat: uint32(repeat)}
	start := time.Now()
	ret, err := prog.Run(opts)
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("benchmarking %s: %w", prog, err)
	}
	return elapsed / time.Duration(repeat), ret, nil
}

// Executor delivers packets the slow path handled, with the same executor
// the fast path runs. Each upcall handler needs its own; at most
// MaxExecutors exist at once.
type Executor struct {
	d    *Datapath
	slot uint32
	// meta is what the slot's exec_meta holds when metaSet: most
	// deliveries are at the first pass with the zero ExecMeta, and
	// rewriting it every time would cost each a syscall.
	meta    ExecMeta
	metaSet bool
}

// ExecMeta is the part of a packet's key a frame does not carry: the
// recirc_id and the conntrack fields the packet had at the pass where it
// missed (struct ovsbpf_exec_meta). Execute lays it over the key it parses
// from the frame, so a packet delivered after a miss at a later pass goes
// on with the key that pass saw, and conntrack does not run twice on it.
// The zero value is a packet at its first pass.
type ExecMeta struct {
	RecircID uint32
	CTState  uint8
	CTZone   uint16
	CTMark   uint32
	CTLabel  [16]byte
}

// ExecMetaOf returns the ExecMeta of a packet key, as an upcall carries
// it. An ARP key's conntrack zone and mark bytes hold arp_tha, which the
// frame carries: they are left out, and Execute leaves them as parsed.
func ExecMetaOf(k *PacketKey) ExecMeta {
	m := ExecMeta{RecircID: k.N.RecircId, CTState: k.N.CtState, CTLabel: k.W.CtLabel}
	if be16(k.N.EthType) != EthTypeARP {
		m.CTZone, m.CTMark = k.N.CtZone, k.N.CtMark
	}
	return m
}

// MaxPasses is OVSBPF_MAX_PASSES: the lookups one packet may make, its
// first included; a packet that would recirculate into one more is dropped
// and counted (Counters.RecircLimit).
const MaxPasses = int(bpf.DatapathOvsbpfLimitOVSBPF_MAX_PASSES)

// MaxExecutors is the number of exec_actions slots (OVSBPF_EXEC_SLOTS).
const MaxExecutors = int(bpf.DatapathOvsbpfTableSizeOVSBPF_EXEC_SLOTS)

// ErrNoExecSlot is returned when MaxExecutors executors exist already.
var ErrNoExecSlot = fmt.Errorf("all %d executor slots in use", MaxExecutors)

type slotPool struct {
	mu   sync.Mutex
	used [MaxExecutors]bool
}

// NewExecutor returns an executor with a slot of its own.
func (d *Datapath) NewExecutor() (*Executor, error) {
	d.exec.mu.Lock()
	defer d.exec.mu.Unlock()
	for i, u := range d.exec.used {
		if !u {
			d.exec.used[i] = true
			return &Executor{d: d, slot: uint32(i)}, nil
		}
	}
	return nil, ErrNoExecSlot
}

// Close returns the executor's slot.
func (e *Executor) Close() {
	e.d.exec.mu.Lock()
	e.d.exec.used[e.slot] = false
	e.d.exec.mu.Unlock()
}

// Execute runs actions on frame, which arrived on interface ifindex (a
// port), with the key the datapath parses from frame and meta laid over
// it: its outputs leave for real, exactly as a cache hit would send them.
// The actions count as one pass; a recirc action continues in the megaflow
// cache for the passes left of MaxPasses, and a miss there comes back as an
// upcall.
func (e *Executor) Execute(frame []byte, ifindex uint32, meta ExecMeta, actions []Action) error {
	enc, err := encodeActions(actions, 1)
	if err != nil {
		return err
	}
	if !e.metaSet || e.meta != meta {
		m := bpf.DatapathOvsbpfExecMeta{RecircId: meta.RecircID, CtState: meta.CTState, CtZone: meta.CTZone, CtMark: meta.CTMark, CtLabel: meta.CTLabel}
		if err := e.d.objs.ExecMeta.Update(unsafe.Pointer(&e.slot), unsafe.Pointer(&m), ebpf.UpdateAny); err != nil {
			e.metaSet = false
			return fmt.Errorf("writing the key's metadata (recirc_id %#x) to execute: %w", meta.RecircID, err)
		}
		e.meta, e.metaSet = meta, true
	}
	// The slot's list goes on in the slot's own blocks, each written
	// before the block that points at it.
	idx := make([]uint32, len(enc)-1)
	for i := range idx {
		idx[i] = execBlocks(e.d.pool, e.slot) + uint32(i)
	}
	linkBlocks(enc, idx)
	for i := len(enc) - 1; i >= 1; i-- {
		if err := e.d.objs.ActionBlocks.Update(unsafe.Pointer(&idx[i-1]), unsafe.Pointer(&enc[i]), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("writing actions to execute: %w", err)
		}
	}
	if err := e.d.objs.ExecActions.Update(unsafe.Pointer(&e.slot), unsafe.Pointer(&enc[0]), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("writing actions to execute: %w", err)
	}
	ctx := skbContext{IngressIfindex: ifindex}
	ctx.CB[0] = e.slot
	if _, err := e.d.objs.OvsbpfExecute.Run(&ebpf.RunOptions{Data: frame, Context: ctx}); err != nil {
		return fmt.Errorf("executing %s on a %d-byte frame from ifindex %d: %w", FormatActions(actions), len(frame), ifindex, err)
	}
	return nil
}

// IngressProgram is the fast path's program, for benchmark harnesses that
// tail-call it (integration/datapathbench). It belongs to the datapath:
// callers must not close it.
func (d *Datapath) IngressProgram() *ebpf.Program { return d.objs.OvsbpfIngress }
