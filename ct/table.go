package ct

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Maps are the conntrack maps of one loaded eBPF object that includes
// bpf/include/ct.h (the datapath's, or a test program's). The Table that
// wraps them does not own them: their object closes them.
type Maps struct {
	Index    *ebpf.Map // ct_index4: tuple -> (connection, direction)
	Conns    *ebpf.Map // ct_conns4: id -> connection (mappable array)
	Free     *ebpf.Map // ct_free4: queue of freed ids
	Params   *ebpf.Map // ct_params: the ct() actions' parameters
	Timeouts *ebpf.Map // ct_timeouts: class -> milliseconds (0: default)
	Config   *ebpf.Map // ct_config: max_conns and the liberal flag
	Alloc    *ebpf.Map // ct_alloc: id allocation and the connection count (mappable)
	Counters *ebpf.Map // ct_counters: per-CPU counters
}

// Raw types shared with the eBPF side, generated from ct.h.
type (
	// RawParams is struct ovsbpf_ct_params, one ct_params slot.
	RawParams = layoutOvsbpfCtParams
	// RawConn is struct ovsbpf_ct_conn4, one ct_conns4 element.
	RawConn = layoutOvsbpfCtConn4
	// RawTuple is struct ovsbpf_ct_tuple4, a ct_index4 key.
	RawTuple = layoutOvsbpfCtTuple4
	// RawRef is struct ovsbpf_ct_ref, a ct_index4 value.
	RawRef = layoutOvsbpfCtRef
	// RawConfig is struct ovsbpf_ct_config, ct_config's one value.
	RawConfig = layoutOvsbpfCtConfig
	// RawAlloc is struct ovsbpf_ct_alloc, ct_alloc's one value.
	RawAlloc = layoutOvsbpfCtAlloc
)

// Sizes of the tables that are not connections or parameters.
const (
	// TimeoutClasses is ct_timeouts' number of entries.
	TimeoutClasses = uint32(layoutOvsbpfCtTimeoutOVSBPF_CT_TM__MAX)
	// NumCounters is ct_counters' number of entries.
	NumCounters = uint32(layoutOvsbpfCtCounterOVSBPF_CT_CNT__MAX)
)

// Sizes of the shared structs, checked against the maps in NewTable.
const (
	connSize   = int(unsafe.Sizeof(RawConn{}))
	paramsSize = int(unsafe.Sizeof(RawParams{}))
	tupleSize  = int(unsafe.Sizeof(RawTuple{}))
	allocSize  = int(unsafe.Sizeof(layoutOvsbpfCtAlloc{}))
)

// Capacity is the compiled-in number of connections (ct_conns4's size
// unless the loader changed it).
const Capacity = uint32(layoutOvsbpfCtLimitOVSBPF_CT_CAPACITY)

// MaxParams is the number of ct_params slots.
const MaxParams = uint32(layoutOvsbpfCtLimitOVSBPF_CT_MAX_PARAMS)

// ErrTooMany is returned by SetMaxConns for a limit above the capacity.
var ErrTooMany = errors.New("connection limit above the table's capacity")

// Table runs the commands on one set of conntrack maps: dump, flush,
// statistics, limits, timeouts and counters. It maps ct_conns4 and
// ct_alloc into memory: dumps read connections without a syscall each,
// and flushes claim a connection with the same compare-and-swap the
// datapath uses. Its methods are safe for concurrent use; only one Table
// should run flushes on a set of maps at a time.
type Table struct {
	m        Maps
	capacity uint32
	conns    []byte // ct_conns4, mapped shared
	alloc    []byte // ct_alloc, mapped shared

	mu sync.Mutex // serialises flushes and config writes
}

// NewTable checks that m holds every conntrack map with the layout this
// package was generated for, and maps the two mappable ones. Close
// unmaps them (the maps themselves stay open).
func NewTable(m Maps) (*Table, error) {
	for name, mp := range map[string]*ebpf.Map{"index": m.Index, "conns": m.Conns, "free": m.Free, "params": m.Params,
		"timeouts": m.Timeouts, "config": m.Config, "alloc": m.Alloc, "counters": m.Counters} {
		if mp == nil {
			return nil, fmt.Errorf("conntrack map %s missing", name)
		}
	}
	if got := int(m.Conns.ValueSize()); got != connSize {
		return nil, fmt.Errorf("ct_conns4 values are %d bytes, this build expects %d: layout mismatch", got, connSize)
	}
	if got := int(m.Params.ValueSize()); got != paramsSize {
		return nil, fmt.Errorf("ct_params values are %d bytes, this build expects %d: layout mismatch", got, paramsSize)
	}
	if got := int(m.Index.KeySize()); got != tupleSize {
		return nil, fmt.Errorf("ct_index4 keys are %d bytes, this build expects %d: layout mismatch", got, tupleSize)
	}
	t := &Table{m: m, capacity: m.Conns.MaxEntries()}
	var err error
	if t.conns, err = mapShared(m.Conns, int(t.capacity)*connSize); err != nil {
		return nil, fmt.Errorf("mapping ct_conns4: %w", err)
	}
	if t.alloc, err = mapShared(m.Alloc, allocSize); err != nil {
		_ = unix.Munmap(t.conns)
		return nil, fmt.Errorf("mapping ct_alloc: %w", err)
	}
	return t, nil
}

// mapShared maps an array created with BPF_F_MMAPABLE, read and write.
func mapShared(m *ebpf.Map, size int) ([]byte, error) {
	page := unix.Getpagesize()
	size = (size + page - 1) / page * page
	return unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
}

// Close unmaps the table's mappings. The maps stay open.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, b := range [][]byte{t.conns, t.alloc} {
		if b != nil {
			errs = append(errs, unix.Munmap(b))
		}
	}
	t.conns, t.alloc = nil, nil
	return errors.Join(errs...)
}

// Capacity is the number of connections the maps can hold.
func (t *Table) Capacity() uint32 { return t.capacity }

// conn returns a pointer to connection id inside the mapping.
func (t *Table) conn(id uint32) *RawConn {
	return (*RawConn)(unsafe.Pointer(&t.conns[int(id)*connSize]))
}

func (t *Table) allocState() *layoutOvsbpfCtAlloc {
	return (*layoutOvsbpfCtAlloc)(unsafe.Pointer(&t.alloc[0]))
}

// nowMS is the datapath's clock: CLOCK_MONOTONIC in milliseconds, low 32
// bits (ct.h reads bpf_ktime_get_coarse_ns, the same clock, coarser).
func nowMS() uint32 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint32(uint64(ts.Sec)*1000 + uint64(ts.Nsec)/1e6)
}

// ParamsAt reads back the parameters at index.
func (t *Table) ParamsAt(index uint32) (Params, error) {
	var raw RawParams
	if err := t.m.Params.Lookup(index, &raw); err != nil {
		return Params{}, fmt.Errorf("reading ct params %d: %w", index, err)
	}
	return DecodeParams(raw), nil
}

// SetParams writes ct_params[index].
func (t *Table) SetParams(index uint32, p Params) error {
	raw, err := p.Encode()
	if err != nil {
		return err
	}
	if index >= t.m.Params.MaxEntries() {
		return fmt.Errorf("ct params index %d: the table has %d slots", index, t.m.Params.MaxEntries())
	}
	if err := t.m.Params.Update(index, &raw, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("writing ct params %d: %w", index, err)
	}
	return nil
}

// snapshot copies the live connections (expired ones excluded) whose zone
// matches, with their ids.
func (t *Table) snapshot(zone *uint16, includeExpired bool) []Entry {
	n := atomic.LoadUint32(&t.allocState().NextId)
	if n > t.capacity {
		n = t.capacity
	}
	now := nowMS()
	var out []Entry
	for id := uint32(0); id < n; id++ {
		p := t.conn(id)
		if atomic.LoadUint32(&p.Flags)&uint32(layoutOvsbpfCtConnFlagOVSBPF_CTF_LIVE) == 0 {
			continue
		}
		c := *p // a racy copy: a field may change while we read
		if zone != nil && c.Orig.Zone != *zone {
			continue
		}
		left := int32(c.Expires - now)
		if left <= 0 && !includeExpired {
			continue
		}
		out = append(out, entryOf(id, &c, left))
	}
	return out
}

// Dump lists the connections, of one zone when zone is not nil, ordered
// by zone and then original tuple. Expired connections are absent, as
// they are to the datapath.
func (t *Table) Dump(zone *uint16) ([]Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return nil, errors.New("dumping conntrack: table closed")
	}
	es := t.snapshot(zone, false)
	sort.Slice(es, func(i, j int) bool {
		if es[i].Zone != es[j].Zone {
			return es[i].Zone < es[j].Zone
		}
		return es[i].String() < es[j].String()
	})
	return es, nil
}

// Flush removes every connection, or those of one zone, and returns how
// many live ones it removed. Expired connections in the range go too,
// uncounted.
func (t *Table) Flush(zone *uint16) (int, error) {
	return t.remove(zone, false)
}

// Expire removes the connections whose time is up and returns how many.
// (The datapath already treats them as absent; this gives their slots
// back.) It is a user-space sweep, a syscall per index entry.
func (t *Table) Expire() (int, error) {
	return t.remove(nil, true)
}

func (t *Table) remove(zone *uint16, expiredOnly bool) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return 0, errors.New("flushing conntrack: table closed")
	}
	n := 0
	var errs []error
	for _, e := range t.snapshot(zone, true) {
		if expiredOnly && e.Timeout > 0 {
			continue
		}
		ok, err := t.free(e.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok && (expiredOnly || e.Timeout > 0) {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// free claims connection id by clearing its LIVE flag with a
// compare-and-swap (so the datapath and we never both free it), then
// deletes its index entries that still point to it and queues the id.
func (t *Table) free(id uint32) (bool, error) {
	p := t.conn(id)
	old := atomic.LoadUint32(&p.Flags)
	if old&uint32(layoutOvsbpfCtConnFlagOVSBPF_CTF_LIVE) == 0 || !atomic.CompareAndSwapUint32(&p.Flags, old, 0) {
		return false, nil
	}
	c := *p
	var errs []error
	for dir, tup := range []RawTuple{c.Orig, c.Reply} {
		var ref RawRef
		if err := t.m.Index.Lookup(&tup, &ref); err != nil {
			continue // already gone
		}
		if ref.Conn != id || ref.Dir != uint32(dir) {
			continue // the tuple belongs to another connection now
		}
		if err := t.m.Index.Delete(&tup); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("deleting conntrack index entry of connection %d: %w", id, err))
		}
	}
	if err := t.m.Free.Update(nil, id, ebpf.UpdateAny); err != nil {
		errs = append(errs, fmt.Errorf("queueing freed conntrack id %d: %w", id, err))
	}
	atomic.AddUint32(&t.allocState().Freed, 1)
	return true, errors.Join(errs...)
}

// NConns is the number of connections the table holds, expired ones not
// yet reclaimed included (what max_conns limits).
func (t *Table) NConns() uint32 {
	a := t.allocState()
	return atomic.LoadUint32(&a.Created) - atomic.LoadUint32(&a.Freed)
}

func (t *Table) config() (layoutOvsbpfCtConfig, error) {
	var c layoutOvsbpfCtConfig
	if err := t.m.Config.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("reading ct_config: %w", err)
	}
	return c, nil
}

func (t *Table) updateConfig(f func(*layoutOvsbpfCtConfig)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.config()
	if err != nil {
		return err
	}
	f(&c)
	if err := t.m.Config.Update(uint32(0), &c, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("writing ct_config: %w", err)
	}
	return nil
}

// SetMaxConns limits the number of connections; new ones beyond it are
// refused (trk|inv, counted). n must be between 1 and the capacity.
func (t *Table) SetMaxConns(n uint32) error {
	if n > t.capacity {
		return fmt.Errorf("ct-set-maxconns %d: %w (%d)", n, ErrTooMany, t.capacity)
	}
	if n == 0 {
		return errors.New("ct-set-maxconns 0: the limit must be at least 1")
	}
	return t.updateConfig(func(c *layoutOvsbpfCtConfig) { c.MaxConns = n })
}

// MaxConns is the connection limit in force.
func (t *Table) MaxConns() (uint32, error) {
	c, err := t.config()
	if err != nil {
		return 0, err
	}
	if c.MaxConns == 0 || c.MaxConns > t.capacity {
		return t.capacity, nil
	}
	return c.MaxConns, nil
}

// SetLiberal turns TCP sequence and window checking off (true) or on
// (OVS: dpctl/ct-disable-tcp-seq-chk and ct-enable-tcp-seq-chk).
func (t *Table) SetLiberal(on bool) error {
	return t.updateConfig(func(c *layoutOvsbpfCtConfig) {
		c.Flags &^= uint32(layoutOvsbpfCtConfigFlagOVSBPF_CT_CFG_LIBERAL)
		if on {
			c.Flags |= uint32(layoutOvsbpfCtConfigFlagOVSBPF_CT_CFG_LIBERAL)
		}
	})
}

// Liberal reports whether TCP sequence checking is off.
func (t *Table) Liberal() (bool, error) {
	c, err := t.config()
	return c.Flags&uint32(layoutOvsbpfCtConfigFlagOVSBPF_CT_CFG_LIBERAL) != 0, err
}

// SetTimeout sets a timeout class; 0 restores OVS's default.
func (t *Table) SetTimeout(tm Timeout, d time.Duration) error {
	if tm >= numTimeouts {
		return fmt.Errorf("conntrack timeout class %d: there are %d", tm, numTimeouts)
	}
	ms := d.Milliseconds()
	if ms < 0 || ms >= 1<<31 {
		return fmt.Errorf("conntrack timeout %s for %s: out of range", d, tm)
	}
	if err := t.m.Timeouts.Update(uint32(tm), uint32(ms), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("writing conntrack timeout %s: %w", tm, err)
	}
	return nil
}

// Timeouts returns every class's timeout in force.
func (t *Table) Timeouts() (map[Timeout]time.Duration, error) {
	out := make(map[Timeout]time.Duration, numTimeouts)
	for tm := Timeout(0); tm < numTimeouts; tm++ {
		var ms uint32
		if err := t.m.Timeouts.Lookup(uint32(tm), &ms); err != nil {
			return nil, fmt.Errorf("reading conntrack timeout %s: %w", tm, err)
		}
		if ms == 0 {
			out[tm] = tm.Default()
		} else {
			out[tm] = time.Duration(ms) * time.Millisecond
		}
	}
	return out, nil
}

// Counters are the datapath's conntrack counters, summed over CPUs.
type Counters struct {
	Created       uint64 // connections stored
	RefusedFull   uint64 // commits refused: limit, capacity or index full
	InvalidFlags  uint64 // TCP flag combinations no stack sends
	InvalidWindow uint64 // TCP segments outside the window
	InvalidNoConn uint64 // no connection and not a valid first packet
	Unsupported   uint64 // IPv6, fragments, ICMP errors (later steps): inv
	Reclaimed     uint64 // expired connections reclaimed by a commit
	Replaced      uint64 // connections ended by a SYN on a closed one, or force
	Races         uint64 // creates lost to another CPU
}

// Counters reads the per-CPU counters and sums them.
func (t *Table) Counters() (Counters, error) {
	var c Counters
	fields := []*uint64{&c.Created, &c.RefusedFull, &c.InvalidFlags, &c.InvalidWindow, &c.InvalidNoConn,
		&c.Unsupported, &c.Reclaimed, &c.Replaced, &c.Races}
	if len(fields) != int(layoutOvsbpfCtCounterOVSBPF_CT_CNT__MAX) {
		return c, fmt.Errorf("conntrack counters: ct.h has %d, this package knows %d", layoutOvsbpfCtCounterOVSBPF_CT_CNT__MAX, len(fields))
	}
	for i, f := range fields {
		var perCPU []uint64
		if err := t.m.Counters.Lookup(uint32(i), &perCPU); err != nil {
			return c, fmt.Errorf("reading conntrack counter %d: %w", i, err)
		}
		for _, v := range perCPU {
			*f += v
		}
	}
	return c, nil
}
