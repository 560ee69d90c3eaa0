package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/bpf"
	"github.com/ovsbpf/ovsbpf/ct"
)

// DefaultPinPath is where ovsbpfd pins the datapath.
const DefaultPinPath = "/sys/fs/bpf/ovsbpf"

// DefaultUpcallRingBytes is the upcall ring's size unless Config says
// otherwise (OVSBPF_UPCALL_RING_BYTES): about 2,400 full-size frames.
const DefaultUpcallRingBytes = uint32(bpf.DatapathOvsbpfTableSizeOVSBPF_UPCALL_RING_BYTES)

// Config says how to load a datapath.
type Config struct {
	// PinPath is the bpffs directory to pin maps and port attachments
	// under, so forwarding outlives the daemon. Empty pins nothing: the
	// datapath goes away with Close (tests, benchmarks).
	PinPath string
	// DisableEMC turns the per-CPU exact-match cache off, leaving every
	// lookup to the tuple space search.
	DisableEMC bool
	// UpcallRingBytes sizes the upcall ring buffer: a power of two and a
	// multiple of the page size. 0 means DefaultUpcallRingBytes.
	UpcallRingBytes uint32
	// MaxFlows is the most megaflows the datapath holds; it sizes the
	// flows map, the three arrays at flow ids and the pool of action
	// blocks for floods, at load time. 0 means DefaultMaxFlows. Pinned
	// maps of another size are refused: remove them to resize.
	MaxFlows int
	// Logger receives the datapath's logs; nil discards them.
	Logger *slog.Logger
}

// MaxFlowLimit bounds Config.MaxFlows: 16 million megaflows would take
// some 2.5 GB of maps, beyond any host's need.
const MaxFlowLimit = 1 << 24

// actionPool is the number of action blocks megaflows' long lists share
// for a datapath of maxFlows megaflows: one for every eight flows (at
// least a flood's worth), as ACTION_POOL_BLOCKS in bpf/datapath.c.
func actionPool(maxFlows int) uint32 { return uint32(max(maxFlows/8, MaxActionBlocks)) }

// execBlocks is the first action_blocks index of exec_actions slot
// slot's own blocks, which sit above the pool.
func execBlocks(pool, slot uint32) uint32 { return 1 + pool + slot*uint32(MaxActionBlocks-1) }

// Datapath is one loaded eBPF datapath: its programs, maps, ports and
// megaflow table. Its methods are safe for concurrent use.
//
// Close releases the process's handles. Unpinned, that unloads everything;
// pinned, the maps and the attachments to ports stay in the kernel and keep
// forwarding until Destroy removes them or a new Open takes them over.
type Datapath struct {
	cfg    Config
	log    *slog.Logger
	objs   bpf.DatapathObjects
	pinDir string // "" when not pinned
	pool   uint32 // action blocks for megaflows' long lists

	mu    sync.Mutex
	ports map[uint16]*portState
	flows *flowTable
	exec  slotPool
	clock clock
	ct    *ct.Table

	// sweepMu guards sweepEntries, AppendFlowsLastUsed's reused list of
	// the flows it reads outside mu.
	sweepMu      sync.Mutex
	sweepEntries []*flowEntry
}

// Open loads the datapath. With a PinPath it reuses the maps a previous
// Open pinned there (flows, ports and counters carry over) and moves the
// ports it finds attached onto the new programs.
func Open(cfg Config) (*Datapath, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spec, err := bpf.LoadDatapath()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded datapath object: %w", err)
	}
	layout := layoutVersion(spec) // before this load's changes to the spec
	ring := cfg.UpcallRingBytes
	if ring == 0 {
		ring = DefaultUpcallRingBytes
	}
	if ring&(ring-1) != 0 || ring%uint32(os.Getpagesize()) != 0 {
		return nil, fmt.Errorf("upcall ring size %d: must be a power of two and a multiple of the page size", ring)
	}
	spec.Maps[bpf.DatapathMapUpcalls].MaxEntries = ring
	maxFlows := cfg.MaxFlows
	if maxFlows == 0 {
		maxFlows = DefaultMaxFlows
	}
	if maxFlows < 1 || maxFlows > MaxFlowLimit {
		return nil, fmt.Errorf("flow table of %d megaflows: must be 1 to %d", cfg.MaxFlows, MaxFlowLimit)
	}
	// Flow id 0 is never used, so the arrays at flow ids have one more
	// slot than the flows map has entries.
	spec.Maps[bpf.DatapathMapFlows].MaxEntries = uint32(maxFlows)
	for _, m := range []string{bpf.DatapathMapFlowActions, bpf.DatapathMapFlowStats, bpf.DatapathMapFlowUsed} {
		spec.Maps[m].MaxEntries = uint32(maxFlows) + 1
	}
	pool := actionPool(maxFlows)
	spec.Maps[bpf.DatapathMapActionBlocks].MaxEntries = execBlocks(pool, uint32(MaxExecutors))
	if cfg.DisableEMC {
		if err := spec.Variables[bpf.DatapathVarEmcEnabled].Set(uint32(0)); err != nil {
			return nil, fmt.Errorf("turning the exact-match cache off: %w", err)
		}
	}

	d := &Datapath{cfg: cfg, log: log, ports: map[uint16]*portState{}}
	opts := &ebpf.CollectionOptions{}
	if cfg.PinPath != "" {
		d.pinDir = filepath.Join(cfg.PinPath, layout)
		if err := ensureBPFFS(cfg.PinPath, log); err != nil {
			return nil, err
		}
		warnOtherLayouts(cfg.PinPath, layout, log)
		if err := os.MkdirAll(filepath.Join(d.pinDir, "links"), 0o700); err != nil {
			return nil, fmt.Errorf("creating pin directory: %w", err)
		}
		for _, m := range pinnedMaps(spec) {
			m.Pinning = ebpf.PinByName
		}
		opts.Maps.PinPath = d.pinDir
	}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading the datapath programs (verifier log follows): %w", err)
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("loading the datapath: the maps pinned under %s were made for another flow table size (%d megaflows asked) or another build; remove them to start afresh: %w", d.pinDir, maxFlows, err)
		}
		return nil, fmt.Errorf("loading the datapath (pinned maps under %s may be from an incompatible build; remove them to start afresh): %w", d.pinDir, err)
	}
	if ring != d.objs.Upcalls.MaxEntries() {
		d.objs.Close()
		return nil, fmt.Errorf("the pinned upcall ring has %d bytes, not %d: remove %s to resize it", d.objs.Upcalls.MaxEntries(), ring, d.pinDir)
	}
	d.pool = pool
	d.flows, err = recoverFlows(&d.objs, log, uint32(maxFlows)+1, pool)
	if err != nil {
		d.objs.Close()
		return nil, err
	}
	if err := d.recoverPorts(); err != nil {
		d.closeLinks()
		d.objs.Close()
		return nil, err
	}
	if err := d.openConntrack(); err != nil {
		d.closeLinks()
		d.objs.Close()
		return nil, err
	}
	d.clock.start(d.objs.OvsbpfClock, d.objs.Clock)
	mem, err := d.MapMemory()
	if err != nil {
		log.Warn("cannot read the maps' memory", "err", err)
	}
	log.Info("datapath loaded", "pinned", d.pinDir, "flows", d.flows.len(), "max_flows", maxFlows,
		"action_blocks", pool, "ports", len(d.ports), "emc", !cfg.DisableEMC, "map_memory_mb", fmt.Sprintf("%.1f", float64(mem.Total())/(1<<20)))
	return d, nil
}

// Close releases the datapath's handles. Pinned objects stay.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeLinks()
	if d.ct != nil {
		d.ct.Close()
	}
	return d.objs.Close()
}

// Destroy detaches every port and removes the pinned objects, then closes.
func (d *Datapath) Destroy() error {
	d.mu.Lock()
	var errs []error
	for no := range d.ports {
		if err := d.detachLocked(no); err != nil {
			errs = append(errs, err)
		}
	}
	if d.pinDir != "" {
		for _, m := range []*ebpf.Map{d.objs.Counters, d.objs.Drops, d.objs.Emc, d.objs.ExecActions, d.objs.ExecMeta,
			d.objs.FlowActions, d.objs.ActionBlocks, d.objs.FlowUsed, d.objs.FlowStats, d.objs.Flows, d.objs.MaskOrder, d.objs.MaskHits, d.objs.Masks,
			d.objs.Ports, d.objs.PortOfIfindex, d.objs.PortOfBigIfindex, d.objs.Upcalls, d.objs.Clock,
			d.objs.CtIndex4, d.objs.CtConns4, d.objs.CtFree4, d.objs.CtParams, d.objs.CtTimeouts, d.objs.CtConfig,
			d.objs.CtAlloc, d.objs.CtCounters, d.objs.IngressKey, d.objs.ExecKeys} {
			if err := m.Unpin(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.RemoveAll(d.pinDir); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Unlock()
	errs = append(errs, d.Close())
	return errors.Join(errs...)
}

// warnOtherLayouts logs the layout directories under pinPath other than
// the one this datapath uses: what a daemon of another build pinned. Their
// maps are not this build's, so Open leaves them alone, but the ports they
// attached still run that build's program ahead of this one's until the
// directory is removed (Destroy from that build, or rm -r).
func warnOtherLayouts(pinPath, layout string, log *slog.Logger) {
	ents, err := os.ReadDir(pinPath)
	if err != nil {
		return // not made yet
	}
	for _, e := range ents {
		if e.IsDir() && e.Name() != layout && (strings.HasPrefix(e.Name(), layoutPrefix) || e.Name() == "v1") {
			log.Warn("pins of another datapath layout found: remove them once this build forwards",
				"path", filepath.Join(pinPath, e.Name()), "this_layout", layout)
		}
	}
}

// UpcallMap is the ring buffer the datapath writes upcalls to.
func (d *Datapath) UpcallMap() *ebpf.Map { return d.objs.Upcalls }

// ensureBPFFS mounts bpffs on /sys/fs/bpf when dir lies under it and it is
// not mounted, as a daemon on a fresh host must.
func ensureBPFFS(dir string, log *slog.Logger) error {
	const root = "/sys/fs/bpf"
	probe := dir
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(probe, &st); err == nil {
			if st.Type == unix.BPF_FS_MAGIC {
				return nil
			}
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	if rel, err := filepath.Rel(root, dir); err != nil || rel == ".." || filepath.IsAbs(rel) || (len(rel) >= 3 && rel[:3] == "../") {
		return fmt.Errorf("pin path %s is not on a bpf filesystem", dir)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting bpffs on %s: %w", root, err)
	}
	log.Info("mounted bpffs", "path", root)
	return nil
}
