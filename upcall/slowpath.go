package upcall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// Pipeline decides what happens to packets: the logical network, seen from
// one chassis. Implementations must be safe for concurrent use.
type Pipeline interface {
	// Process decides the fate of a packet whose fields are pkt (in_port
	// is the datapath port it arrived on).
	Process(pkt field.Key) (Decision, error)
	// Resume decides a packet that came back after a Freeze: state is
	// the Freeze's State, and pkt holds the packet's fields on this pass
	// (headers as the actions so far left them, conntrack fields as the
	// datapath's ct filled them in).
	Resume(state any, pkt field.Key) (Decision, error)
	// Version changes whenever the pipeline does; a decision taken at
	// one version must be checked again at a later one.
	Version() uint64
}

// Decision is what a pipeline does with one packet.
type Decision struct {
	Outputs []Output // in order; none (and no freeze) drops the packet
	// Freeze, if not nil, follows the outputs: the packet goes through
	// conntrack and comes back to the pipeline.
	Freeze *Freeze
	Mask   field.Mask // every bit of the packet the decision depends on
	// NoCache, when not empty, says why the decision must not be cached
	// (it depends on something outside the packet, like conntrack).
	NoCache string
}

// Config says how the slow path runs.
type Config struct {
	Datapath *datapath.Datapath
	Pipeline Pipeline
	// Handlers is the number of goroutines that handle upcalls; 0 means
	// one per CPU.
	Handlers int
	// MaxIdle is how long a megaflow may go unused before it is deleted;
	// 0 means 10 s, as OVS's max-idle.
	MaxIdle time.Duration
	// FlowLimit caps the number of megaflows; 0 means the datapath's
	// capacity. Past it, packets are handled but not cached.
	FlowLimit int
	// RevalidateEvery is the period of the revalidator's sweep (idle
	// flows, flow limit); a pipeline change starts a sweep at once.
	// 0 means 500 ms.
	RevalidateEvery time.Duration
	// BusyPoll, if positive, has the handler holding the ring spin this
	// long for the next upcall before it sleeps: a CPU kept busy while
	// upcalls keep coming, for a latency without the wake-up from
	// epoll_wait (tens of microseconds on a VM). 0 never spins.
	BusyPoll time.Duration
	// HandlerThread, if set, runs on each handler's OS thread, which
	// the handler keeps for its life, before it handles an upcall: a
	// caller whose process is not in the ports' network namespace
	// enters it here.
	HandlerThread func() error
	Logger        *slog.Logger
}

// Slowpath reads upcalls, decides them with the pipeline, installs
// megaflows, delivers the packets, and keeps the cached megaflows in line
// with the pipeline.
type Slowpath struct {
	cfg  Config
	dp   *datapath.Datapath
	pipe Pipeline
	log  *slog.Logger

	mf         *megaflows // the megaflow table and the ukeys
	kick       chan struct{}
	stats      counters
	latency    *latencyRing // upcall to packet sent
	wait       *latencyRing // upcall to a handler holding it
	deciding   *latencyRing // parsing the record and running the pipeline
	installing *latencyRing // computing the megaflow and installing it
	rate       *rateMeter
}

type counters struct {
	upcalls, misses, installed, uncacheable, unsupported, pipelineErrors atomic.Uint64
	delivered, deliveryErrors, truncated, badRecords                     atomic.Uint64
	otherReasons, revalidations, expired, revalidatedAway, evicted       atomic.Uint64
	installErrors, checksumsCompleted, notReady, notReadySweeps          atomic.Uint64
	rewritten, recircUnknown                                             atomic.Uint64
}

// New returns a slow path; Run starts it.
func New(cfg Config) (*Slowpath, error) {
	if cfg.Datapath == nil || cfg.Pipeline == nil {
		return nil, errors.New("slow path: a datapath and a pipeline are required")
	}
	if cfg.Handlers <= 0 {
		cfg.Handlers = runtime.NumCPU()
	}
	if cfg.Handlers > datapath.MaxExecutors {
		return nil, fmt.Errorf("slow path: %d handlers, at most %d", cfg.Handlers, datapath.MaxExecutors)
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = 10 * time.Second
	}
	if cfg.FlowLimit <= 0 || cfg.FlowLimit > cfg.Datapath.MaxFlows() {
		cfg.FlowLimit = cfg.Datapath.MaxFlows()
	}
	if cfg.RevalidateEvery <= 0 {
		cfg.RevalidateEvery = 500 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Slowpath{cfg: cfg, dp: cfg.Datapath, pipe: cfg.Pipeline, log: log,
		kick: make(chan struct{}, 1), latency: newLatencyRing(4096), wait: newLatencyRing(4096),
		deciding: newLatencyRing(4096), installing: newLatencyRing(4096), rate: newRateMeter()}
	s.mf = newMegaflows(cfg.Datapath, cfg.Pipeline, &s.cfg, &s.stats, log)
	return s, nil
}

// Revalidate runs one revalidator sweep now.
func (s *Slowpath) Revalidate() { s.mf.revalidate() }

// DeleteFlows deletes every megaflow and what the slow path remembers of
// them, as dpctl/del-flows does, and returns how many flows there were.
// Deleting through the datapath instead would leave the slow path's
// memory of them behind until the next sweep.
func (s *Slowpath) DeleteFlows() int { return s.mf.deleteAll() }

// PipelineChanged starts a revalidation: every cached megaflow decided at
// an older pipeline version is checked against the current one.
func (s *Slowpath) PipelineChanged() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run handles upcalls and revalidates until ctx ends. The process must be
// in the network namespace of the datapath's ports: delivering a packet
// test-runs a program, which finds its output interfaces by index in the
// namespace of the thread that runs it.
//
// Handlers take turns at the ring (leader and followers): the one holding
// the ring reads a record and handles it itself, passing the ring on first
// only when more records wait. So a burst spreads over the handlers, and a
// trickle stays on one thread. Both alternatives measured badly at the
// tail (p99 of 8 to 12 ms against 0.4 ms): handing records to handler
// goroutines over channels, and passing the ring on after every record;
// each makes threads take turns in a blocking epoll_wait, and a thread
// woken from it waited milliseconds for a processor.
func (s *Slowpath) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rd, err := ringbuf.NewReader(s.dp.UpcallMap())
	if err != nil {
		return fmt.Errorf("opening the upcall ring: %w", err)
	}
	// cilium/ebpf's Reader crashes in AvailableBytes after Close, so
	// those calls hold closing for reading, and Close waits for them.
	var closing sync.RWMutex
	closed := false
	available := func() (int, bool) {
		closing.RLock()
		defer closing.RUnlock()
		if closed {
			return 0, false
		}
		return rd.AvailableBytes(), true
	}
	go func() {
		<-ctx.Done()
		closing.Lock()
		closed = true
		rd.Close()
		closing.Unlock()
	}()
	var (
		wg      sync.WaitGroup
		ring    sync.Mutex
		errOnce sync.Once
		readErr error
	)
	// Flows an earlier daemon left name recirculation ids and
	// conntrack parameters: take them over before any handler hands out
	// an id.
	left, err := s.dp.AppendFlowsLastUsed(nil)
	if err == nil {
		err = s.mf.adoptIDs(left)
	}
	if err != nil {
		rd.Close()
		return fmt.Errorf("taking over the flows in the datapath: %w", err)
	}
	ready := make(chan error, s.cfg.Handlers)
	for i := 0; i < s.cfg.Handlers; i++ {
		x, err := s.dp.NewExecutor()
		if err != nil {
			rd.Close()
			wg.Wait()
			return fmt.Errorf("handler %d: %w", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer x.Close()
			if s.cfg.HandlerThread != nil {
				runtime.LockOSThread() // never unlocked: the thread dies with the handler
				if err := s.cfg.HandlerThread(); err != nil {
					ready <- err
					return
				}
			}
			ready <- nil
			var rec ringbuf.Record
			held := false
			for {
				if !held {
					ring.Lock()
					held = true
				}
				if s.cfg.BusyPoll > 0 {
					s.spin(available)
				}
				// rec's buffer is this handler's own and is reused by
				// its next read only, after handle, which keeps nothing
				// of it, has returned.
				err := rd.ReadInto(&rec)
				// Keep the ring unless more records wait: then a
				// follower reads the next while this one handles.
				if n, ok := available(); err != nil || !ok || n > 0 {
					ring.Unlock()
					held = false
				}
				if err != nil {
					if !errors.Is(err, ringbuf.ErrClosed) && !errors.Is(err, os.ErrClosed) {
						errOnce.Do(func() { readErr = fmt.Errorf("reading the upcall ring: %w", err) })
						cancel()
					}
					return
				}
				s.handle(x, rec.RawSample)
			}
		}()
	}
	var startErr error
	for i := 0; i < s.cfg.Handlers; i++ {
		if err := <-ready; err != nil && startErr == nil {
			startErr = fmt.Errorf("starting a handler: %w", err)
		}
	}
	if startErr != nil {
		rd.Close()
		wg.Wait()
		return startErr
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.revalidator(ctx)
	}()
	s.log.Info("slow path running", "handlers", s.cfg.Handlers, "max_idle", s.cfg.MaxIdle, "flow_limit", s.cfg.FlowLimit)
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	return context.Cause(ctx)
}

// spin watches the ring for up to the busy-poll time and returns when a
// record waits, or the ring closed, or the time is up. It reads the clock
// only every few hundred looks (a look is two loads from the ring's shared
// pages) and never yields to the Go scheduler: runtime.Gosched in the loop
// woke another thread on each call (futex wake-ups were most of a profile
// of the spinning handler) and bought no latency. Go's preemption still
// lets other goroutines run.
func (s *Slowpath) spin(available func() (int, bool)) {
	start := time.Now()
	for i := 1; ; i++ {
		if n, ok := available(); !ok || n > 0 {
			return
		}
		if i%256 == 0 && time.Since(start) > s.cfg.BusyPoll {
			return
		}
	}
}

func (s *Slowpath) handle(x *datapath.Executor, raw []byte) {
	s.stats.upcalls.Add(1)
	s.rate.add(time.Now())
	u, err := datapath.ParseUpcall(raw)
	if err != nil {
		s.stats.badRecords.Add(1)
		s.log.Error("bad upcall record", "err", err)
		return
	}
	taken := datapath.MonotonicNow()
	s.wait.add(time.Duration(taken - u.Time))
	if u.Reason != datapath.UpcallMiss {
		// TTL expiry (ICMP time exceeded), conntrack and controller
		// actions are not handled yet: the packet is dropped, counted.
		s.stats.otherReasons.Add(1)
		return
	}
	s.stats.misses.Add(1)
	version := s.pipe.Version()
	pkt := PacketFields(&u.Key)
	dec, err := s.mf.decide(u.Key.N.RecircId, pkt)
	if errors.Is(err, errUnknownRecirc) {
		s.stats.recircUnknown.Add(1)
		s.log.Warn("packet came back with a recirculation id the slow path does not know; dropped", "packet", u.Key.Narrow().String())
		return
	}
	if errors.Is(err, ErrNotReady) {
		s.stats.notReady.Add(1)
		s.log.Debug("pipeline not loaded yet; packet dropped", "packet", u.Key.Narrow().String())
		return
	}
	if err != nil {
		s.stats.pipelineErrors.Add(1)
		s.log.Warn("pipeline failed on a packet; dropped", "packet", u.Key.Narrow().String(), "err", err)
		return
	}
	acts, err := BuildActions(&pkt, &dec, s.mf)
	if err != nil {
		s.stats.unsupported.Add(1)
		s.log.Warn("packet needs an action the datapath lacks; dropped", "packet", u.Key.Narrow().String(), "err", err)
		return
	}
	decided := datapath.MonotonicNow()
	s.deciding.add(time.Duration(decided - taken))
	s.install(&u, pkt, dec, acts, version)
	s.installing.add(time.Duration(datapath.MonotonicNow() - decided))
	s.deliver(x, &u, acts)
	s.latency.add(time.Duration(datapath.MonotonicNow() - u.Time))
}

func (s *Slowpath) install(u *datapath.Upcall, pkt field.Key, dec Decision, acts []datapath.Action, version uint64) {
	mf, err := CacheEntry(&u.Key, &dec, acts)
	why := ""
	if err != nil {
		why = err.Error()
	} else if s.mf.count() >= s.cfg.FlowLimit {
		why = "flow limit reached"
	}
	if why != "" {
		s.stats.uncacheable.Add(1)
		s.log.Debug("not caching", "packet", u.Key.Narrow().String(), "why", why)
		return
	}
	if err := s.mf.install(mf.Mask, mf.Key, pkt, acts, version); err != nil {
		s.stats.installErrors.Add(1)
		s.log.Warn("cannot install megaflow", "err", err)
		return
	}
	s.stats.installed.Add(1)
	if s.pipe.Version() != version {
		// The pipeline changed while this packet was decided: check
		// the flow against the new one.
		s.PipelineChanged()
	}
}

// deliver sends the packet with the actions a cache hit would have run;
// a decision with no output has none.
func (s *Slowpath) deliver(x *datapath.Executor, u *datapath.Upcall, acts []datapath.Action) {
	if len(acts) == 0 {
		return
	}
	if u.FrameLen != uint32(len(u.Frame)) {
		s.stats.truncated.Add(1)
		return
	}
	if completeChecksum(u.Frame) {
		s.stats.checksumsCompleted.Add(1)
	}
	// The packet goes on as it was at the miss: on a pass after a
	// recirculation, with the recirculation id and the conntrack fields
	// the datapath had given it, so that conntrack does not see it twice.
	if err := x.Execute(u.Frame, u.Ifindex, datapath.ExecMetaOf(&u.Key), acts); err != nil {
		s.stats.deliveryErrors.Add(1)
		s.log.Warn("cannot deliver a packet from the slow path", "err", err)
		return
	}
	s.stats.delivered.Add(1)
}
