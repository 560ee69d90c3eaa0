// Package chassis plays ovn-controller's part on one chassis: it binds
// the local interfaces the Open_vSwitch database names (iface-id) to
// datapath ports, and it is the slow path's Pipeline over the OVN logical
// flows, translating between datapath ports and logical ports.
package chassis

import (
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/upcall"
)

// Pipeline is the OVN logical pipeline as the slow path sees it. Loading
// and applying Southbound changes and rebinding ports take a write lock;
// processing packets a read lock, so handlers run in parallel.
type Pipeline struct {
	log *slog.Logger

	mu      sync.RWMutex
	tr      *ovn.Translator
	loaded  bool
	byPort  map[uint16]string // datapath port -> logical port
	byLport map[string]uint16

	version      atomic.Uint64
	remoteOutput atomic.Uint64 // outputs to logical ports not on this chassis
	needCT       atomic.Uint64 // packets dropped for needing conntrack
}

// NewPipeline returns an empty pipeline: until Load, every packet fails.
func NewPipeline(log *slog.Logger) *Pipeline {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{log: log, tr: ovn.NewTranslator(ovn.Options{}), byPort: map[uint16]string{}, byLport: map[string]uint16{}}
}

// ErrNotLoaded is returned by Process before the Southbound is read.
// It is an upcall.ErrNotReady, so the revalidator keeps cached flows
// until there is a pipeline to check them against.
var ErrNotLoaded = fmt.Errorf("no logical flows yet, the Southbound database has not been read: %w", upcall.ErrNotReady)

// Load replaces the logical pipeline with a full Southbound snapshot.
func (p *Pipeline) Load(sb *ovn.Southbound) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.tr.Load(sb); err != nil {
		return fmt.Errorf("loading the logical flows: %w", err)
	}
	p.loaded = true
	p.version.Add(1)
	st := p.tr.Stats()
	p.log.Info("logical pipeline loaded", "logical_flows", st.LogicalFlows, "rules", st.Rules, "skipped", len(p.tr.Skipped()))
	return nil
}

// Apply changes the logical pipeline by a batch of Southbound changes.
func (p *Pipeline) Apply(ch *ovn.Change) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.tr.Apply(ch); err != nil {
		return fmt.Errorf("applying southbound changes: %w", err)
	}
	p.loaded = true
	p.version.Add(1)
	return nil
}

// SetBindings says which logical port each datapath port is. It returns
// whether anything changed.
func (p *Pipeline) SetBindings(byPort map[uint16]string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if maps.Equal(p.byPort, byPort) {
		return false
	}
	p.byPort = maps.Clone(byPort)
	p.byLport = make(map[string]uint16, len(byPort))
	for port, lp := range byPort {
		p.byLport[lp] = port
	}
	p.version.Add(1)
	return true
}

// Version implements upcall.Pipeline.
func (p *Pipeline) Version() uint64 { return p.version.Load() }

// Skipped returns the logical flows the translator could not use.
func (p *Pipeline) Skipped() []ovn.Skip {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.tr.Skipped()
}

// Process implements upcall.Pipeline: the packet enters the logical
// network through the logical port bound to its datapath port, and leaves
// through those of its outputs that are bound here.
func (p *Pipeline) Process(pkt field.Key) (upcall.Decision, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.loaded {
		return upcall.Decision{}, ErrNotLoaded
	}
	var d upcall.Decision
	d.Mask.AddField(field.InPort, field.Ones(32))
	in := uint16(pkt.Get(field.InPort).Lo)
	lport, ok := p.byPort[in]
	if !ok {
		// Not bound (yet): drop. Binding it bumps the version and
		// the revalidator drops this decision.
		return d, nil
	}
	res, err := p.tr.ProcessPacket(lport, pkt, ovn.RunOptions{})
	if err != nil {
		return d, err
	}
	d.Mask.Or(&res.Mask)
	if res.Conntrack {
		// The interpreter's conntrack answers are ovn-trace's guesses;
		// forwarding on them could pass what an ACL blocks.
		p.needCT.Add(1)
		return upcall.Decision{Mask: d.Mask, NoCache: "the logical flows need conntrack, which the datapath lacks so far"}, nil
	}
	if len(res.Errors) > 0 {
		return upcall.Decision{Mask: d.Mask, NoCache: "pipeline error: " + strings.Join(res.Errors, "; ")}, nil
	}
	for _, o := range res.Outputs {
		port, ok := p.byLport[o.Port]
		if !ok {
			p.remoteOutput.Add(1)
			continue
		}
		d.Outputs = append(d.Outputs, upcall.Output{Port: port, Key: o.Key})
	}
	return d, nil
}

// Stats are the pipeline's own counters.
type Stats struct {
	Version       uint64
	RemoteOutputs uint64 // outputs to logical ports bound elsewhere: not sent (no tunnels yet)
	NeedConntrack uint64 // packets dropped because their flows need conntrack
	Bindings      int
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() Stats {
	p.mu.RLock()
	n := len(p.byPort)
	p.mu.RUnlock()
	return Stats{Version: p.Version(), RemoteOutputs: p.remoteOutput.Load(), NeedConntrack: p.needCT.Load(), Bindings: n}
}
