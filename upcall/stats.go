package upcall

import (
	"slices"
	"sync"
	"time"
)

// Stats is what upcall/show reports about the slow path.
type Stats struct {
	Handlers       int
	Upcalls        uint64 // records read from the ring
	Misses         uint64 // of which cache misses
	OtherReasons   uint64 // TTL expiry, controller actions: dropped for now
	Installed      uint64 // megaflows installed
	Uncacheable    uint64 // decisions delivered but not cached
	Unsupported    uint64 // packets dropped: a rewrite the datapath cannot do
	PipelineErrors uint64 // packets dropped: the pipeline failed
	NotReady       uint64 // packets dropped: the pipeline was not loaded yet
	InstallErrors  uint64 // megaflows the datapath refused
	Delivered      uint64 // packets the slow path sent on
	DeliveryErrors uint64 // packets it failed to send
	Truncated      uint64 // frames longer than an upcall carries: dropped
	// ChecksumsCompleted counts delivered packets whose TCP or UDP
	// checksum was left to offload by a local sender and filled in.
	ChecksumsCompleted uint64
	BadRecords         uint64 // ring records that did not decode
	Revalidations      uint64 // revalidator sweeps
	Expired            uint64 // megaflows deleted as idle
	RevalidatedAway    uint64 // megaflows deleted because the pipeline changed
	Evicted            uint64 // megaflows deleted over the flow limit
	Rewritten          uint64 // megaflows whose actions the revalidator changed
	// NotReadySweeps counts sweeps that left flows unchecked because
	// the pipeline was not loaded yet (a restart, before the Southbound
	// is read).
	NotReadySweeps uint64
	// RecircUnknown counts packets dropped because they came back at a
	// recirculation id with no frozen state (a restart, or a packet in
	// flight for two revalidator sweeps).
	RecircUnknown uint64
	// RecircIDs and CTParams are the recirculation ids and conntrack
	// parameter sets the slow path holds.
	RecircIDs, CTParams int
	Ukeys               int     // megaflows the slow path remembers
	RatePerSecond       float64 // upcalls a second over the last 10 s
	// Handler latency, from the datapath's upcall to the megaflow
	// installed and the packet sent, over the last 4,096 upcalls.
	LatencyP50, LatencyP90, LatencyP99, LatencyMax time.Duration
	LatencySamples                                 int
	// The part of it before a handler took the upcall from the ring:
	// the ring's wake-up and the wait for a free handler.
	WaitP50, WaitP99 time.Duration
	// The handler's own steps: parsing the record and running the
	// pipeline, then computing the megaflow and installing it (the rest,
	// delivering the packet, is one test run of the datapath program).
	DecideP50, DecideP99   time.Duration
	InstallP50, InstallP99 time.Duration
}

// Stats returns the slow path's counters.
func (s *Slowpath) Stats() Stats {
	c := &s.stats
	st := Stats{
		Handlers: s.cfg.Handlers, Upcalls: c.upcalls.Load(), Misses: c.misses.Load(), OtherReasons: c.otherReasons.Load(),
		Installed: c.installed.Load(), Uncacheable: c.uncacheable.Load(), Unsupported: c.unsupported.Load(),
		PipelineErrors: c.pipelineErrors.Load(), InstallErrors: c.installErrors.Load(), Delivered: c.delivered.Load(),
		DeliveryErrors: c.deliveryErrors.Load(), Truncated: c.truncated.Load(),
		BadRecords: c.badRecords.Load(), Revalidations: c.revalidations.Load(), Expired: c.expired.Load(),
		RevalidatedAway: c.revalidatedAway.Load(), Evicted: c.evicted.Load(),
		ChecksumsCompleted: c.checksumsCompleted.Load(), NotReady: c.notReady.Load(),
		Rewritten: c.rewritten.Load(), NotReadySweeps: c.notReadySweeps.Load(), Ukeys: s.mf.ukeyCount(),
		RecircUnknown: c.recircUnknown.Load(), RecircIDs: s.mf.recirc.Len(), CTParams: s.mf.ctParams.Len(),
		RatePerSecond: s.rate.perSecond(time.Now()),
	}
	lat := s.latency.snapshot()
	st.LatencySamples = len(lat)
	if len(lat) > 0 {
		st.LatencyP50, st.LatencyP90, st.LatencyP99, st.LatencyMax = percentiles(lat)
	}
	if wait := s.wait.snapshot(); len(wait) > 0 {
		st.WaitP50, _, st.WaitP99, _ = percentiles(wait)
	}
	if d := s.deciding.snapshot(); len(d) > 0 {
		st.DecideP50, _, st.DecideP99, _ = percentiles(d)
	}
	if in := s.installing.snapshot(); len(in) > 0 {
		st.InstallP50, _, st.InstallP99, _ = percentiles(in)
	}
	return st
}

// percentiles returns the 50th, 90th and 99th percentiles and the maximum
// of v, which it sorts.
func percentiles(v []time.Duration) (p50, p90, p99, maximum time.Duration) {
	slices.Sort(v)
	pct := func(p float64) time.Duration { return v[min(len(v)-1, int(p*float64(len(v))))] }
	return pct(0.50), pct(0.90), pct(0.99), v[len(v)-1]
}

// latencyRing keeps the last n handler latencies.
type latencyRing struct {
	mu   sync.Mutex
	buf  []time.Duration
	next int
	full bool
}

func newLatencyRing(n int) *latencyRing { return &latencyRing{buf: make([]time.Duration, n)} }

func (r *latencyRing) add(d time.Duration) {
	r.mu.Lock()
	r.buf[r.next] = d
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

func (r *latencyRing) snapshot() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return slices.Clone(r.buf)
	}
	return slices.Clone(r.buf[:r.next])
}

// rateMeter counts events per second over the last rateWindow seconds.
type rateMeter struct {
	mu     sync.Mutex
	counts [rateWindow]uint64
	secs   [rateWindow]int64
}

const rateWindow = 10

func newRateMeter() *rateMeter { return &rateMeter{} }

func (m *rateMeter) add(now time.Time) {
	sec := now.Unix()
	i := sec % rateWindow
	m.mu.Lock()
	if m.secs[i] != sec {
		m.secs[i], m.counts[i] = sec, 0
	}
	m.counts[i]++
	m.mu.Unlock()
}

func (m *rateMeter) perSecond(now time.Time) float64 {
	sec := now.Unix()
	var n uint64
	m.mu.Lock()
	for i := range m.secs {
		if sec-m.secs[i] < rateWindow {
			n += m.counts[i]
		}
	}
	m.mu.Unlock()
	return float64(n) / rateWindow
}
