package integration

// The megaflow soundness suite. A megaflow says: every packet whose key,
// masked, equals this one's gets these actions. That is only true if the
// mask holds every bit the pipeline's decision depended on; a mask one bit
// too narrow forwards what policy drops. These tests check it on every
// topology of the differential suite, with a real ovn-northd's logical
// flows and the real eBPF parser and cache:
//
//   - decisions: each microflow of the suite (and a few variants of it with
//     one field changed to a value another microflow of the topology uses)
//     is built into a frame, parsed by the loaded eBPF program into the key
//     an upcall carries, and decided as the slow path decides it: the chassis
//     pipeline, BuildActions, CacheEntry;
//   - agreement: random packet keys that agree with the decided packet on
//     every masked bit, random everywhere else (the narrow key, the wide
//     key the megaflow never matches), must be decided with the same
//     actions and the same mask;
//   - no overlap: no two megaflows of a topology match a common packet with
//     different actions (the tuple space search returns whichever it finds);
//   - end to end: the megaflows are installed in a second loaded datapath
//     and random frames that agree on the masked fields run through it with
//     BPF_PROG_TEST_RUN, in a namespace where each port is a veth; a frame
//     that matches an installed megaflow must hit it, and the verdict and
//     every copy it sends (the clones captured on the ports' veths, the
//     last from the program's own redirect), parsed back by the eBPF
//     parser, must be what the pipeline decides for that frame.
//
// Knobs, environment variables (make fuzz sets them for a longer run):
//
//	OVSBPF_SOUNDNESS_SEED=N|random   the random source's seed (default 1)
//	OVSBPF_SOUNDNESS_SAMPLES=N       random keys per decision (default 64)
//	OVSBPF_SOUNDNESS_FRAMES=N        random frames per megaflow (default 8)

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/internal/chassis"
	"github.com/ovsbpf/ovsbpf/internal/netns"
	"github.com/ovsbpf/ovsbpf/internal/ovntest"
	"github.com/ovsbpf/ovsbpf/internal/testframe"
	"github.com/ovsbpf/ovsbpf/ovsdb"
	"github.com/ovsbpf/ovsbpf/upcall"
)

const (
	envSoundnessSeed    = "OVSBPF_SOUNDNESS_SEED"
	envSoundnessSamples = "OVSBPF_SOUNDNESS_SAMPLES"
	envSoundnessFrames  = "OVSBPF_SOUNDNESS_FRAMES"

	// variantsPerCase is how many variants of each microflow are decided
	// beside it, each with one header field set to a value another
	// microflow of the topology has: more decisions, and more megaflows
	// side by side for the overlap check.
	variantsPerCase = 4

	// minCachedDecisions is the least number of cacheable decisions the
	// suite must check when every topology runs: the suite would pass
	// trivially if the pipeline cached nothing.
	minCachedDecisions = 300

	// outputWait bounds the wait for a copy the cache sent to a port.
	outputWait = 2 * time.Second
)

type soundnessConfig struct {
	seed            uint64
	samples, frames int
}

func readSoundnessConfig(t *testing.T) soundnessConfig {
	c := soundnessConfig{seed: 1, samples: 64, frames: 8}
	if s := os.Getenv(envSoundnessSeed); s == "random" {
		c.seed = uint64(time.Now().UnixNano())
	} else if s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "%s=%q: want a number or \"random\"", envSoundnessSeed, s)
		c.seed = n
	}
	for env, dst := range map[string]*int{envSoundnessSamples: &c.samples, envSoundnessFrames: &c.frames} {
		if s := os.Getenv(env); s != "" {
			n, err := strconv.Atoi(s)
			require.NoError(t, err, "%s=%q: want a number", env, s)
			require.Positive(t, n, "%s", env)
			*dst = n
		}
	}
	return c
}

// TestMegaflowSoundness checks, on every topology, that every megaflow
// the slow path would install gives the pipeline's own answer for every
// packet it matches, in the pipeline and in the loaded eBPF cache.
func TestMegaflowSoundness(t *testing.T) {
	cfg := readSoundnessConfig(t)
	t.Logf("seed %d (%s=%d reproduces), %d random keys per decision, %d random frames per megaflow",
		cfg.seed, envSoundnessSeed, cfg.seed, cfg.samples, cfg.frames)
	topos := topologies()
	var total soundnessCounts
	var ran atomic.Int64
	t.Run("topology", func(t *testing.T) {
		for i, topo := range topos {
			t.Run(topo.name, func(t *testing.T) {
				t.Parallel()
				var c soundnessCounts
				checkSoundness(t, topo, cfg, cfg.seed+uint64(i), &c)
				total.add(&c)
				ran.Add(1)
				t.Logf("%s: %s", topo.name, c.String())
			})
		}
	})
	t.Logf("all topologies: %s", total.String())
	if int(ran.Load()) == len(topos) && total.cached.Load() < minCachedDecisions {
		t.Errorf("only %d cacheable decisions checked, want at least %d", total.cached.Load(), minCachedDecisions)
	}
}

type soundnessCounts struct {
	decisions, cached, megaflows, keys, frames, hits, misses atomic.Int64
}

func (c *soundnessCounts) add(o *soundnessCounts) {
	c.decisions.Add(o.decisions.Load())
	c.cached.Add(o.cached.Load())
	c.megaflows.Add(o.megaflows.Load())
	c.keys.Add(o.keys.Load())
	c.frames.Add(o.frames.Load())
	c.hits.Add(o.hits.Load())
	c.misses.Add(o.misses.Load())
}

func (c *soundnessCounts) String() string {
	return fmt.Sprintf("%d decisions, %d cacheable, %d distinct megaflows; %d random keys agreed; %d random frames through the eBPF cache (%d hits, %d misses matching no installed megaflow)",
		c.decisions.Load(), c.cached.Load(), c.megaflows.Load(), c.keys.Load(), c.frames.Load(), c.hits.Load(), c.misses.Load())
}

// chassisUnderTest is one topology's pipeline as one chassis binds it,
// with two loaded datapaths: parser, with no megaflows, turns frames into
// the keys upcalls carry; cache holds the megaflows under test. Each
// datapath port is a veth in the chassis namespace whose peer captures
// what the cache sends there.
type chassisUnderTest struct {
	t        *testing.T
	pipe     *chassis.Pipeline
	tr       *ovn.Translator
	ports    map[string]uint16 // logical port -> datapath port
	ns       *netns.NS
	ifindex  map[uint16]uint32 // datapath port -> its veth in ns
	captures map[uint16]*netns.Capture
	parser   *datapath.Datapath
	ring     *ringbuf.Reader
	cache    *datapath.Datapath
}

func checkSoundness(t *testing.T, topo topology, cfg soundnessConfig, seed uint64, counts *soundnessCounts) {
	e := ovntest.Start(t)
	topo.build(e)
	e.Sync()
	c := newChassisUnderTest(t, e)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	seeds := c.seedPackets(topo.cases)
	vocab := vocabulary(seeds)
	var decided []*decision
	for _, s := range seeds {
		pkts := []seedPacket{s}
		for range variantsPerCase {
			pkts = append(pkts, vocab.variant(rng, s))
		}
		for _, p := range pkts {
			d := c.decide(p.label, c.parse(p.frame(t), p.inport))
			counts.decisions.Add(1)
			if d.err == nil {
				counts.cached.Add(1)
				decided = append(decided, d)
			}
		}
	}

	// Agreement: random keys that agree on the mask are decided alike.
	for _, d := range decided {
		for range cfg.samples {
			pk := randomAgreeing(rng, &d.pk, &d.flow.Mask)
			got := c.decide(d.label+" (random key)", pk)
			if !c.sameMegaflow(d, got) {
				return
			}
			counts.keys.Add(1)
		}
	}

	// No overlap: two megaflows that match a common packet agree.
	flows := distinctMegaflows(decided)
	counts.megaflows.Add(int64(len(flows)))
	for i, f := range flows {
		for _, g := range flows[i+1:] {
			if f.flow.Overlaps(&g.flow) && !slices.Equal(f.flow.Actions, g.flow.Actions) {
				t.Errorf("megaflows overlap with different actions:\n  %s (from %s)\n  %s (from %s)",
					formatMegaflow(&f.flow), f.label, formatMegaflow(&g.flow), g.label)
			}
		}
	}

	// End to end through the loaded cache, at most MaxMasks masks at a
	// time.
	for _, batch := range batchesByMask(flows, int(datapath.MaxMasks)) {
		c.install(batch)
		for _, d := range batch {
			for range cfg.frames {
				hit := c.runAgreeingFrame(rng, d, batch)
				counts.frames.Add(1)
				if hit {
					counts.hits.Add(1)
				} else {
					counts.misses.Add(1)
				}
			}
		}
		require.Positive(t, c.cache.DeleteFlows())
	}
	for port, cp := range c.captures {
		if extra := cp.Next(0); extra != nil {
			t.Errorf("port %d got a copy no output asked for: %x", port, extra)
		}
	}
}

func newChassisUnderTest(t *testing.T, e *ovntest.Env) *chassisUnderTest {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := ovsdb.ReadSouthbound(ctx, e.SBRemote(), nil)
	require.NoError(t, err, "reading the Southbound")
	c := &chassisUnderTest{t: t, pipe: chassis.NewPipeline(nil), tr: ovn.NewTranslator(ovn.Options{}), ports: map[string]uint16{},
		ns: netns.New(t, "ovsbpf-sound"), ifindex: map[uint16]uint32{}, captures: map[uint16]*netns.Capture{}}
	// Nothing but the cache's copies may reach the captures.
	c.ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	require.NoError(t, c.pipe.Load(sb))
	require.NoError(t, c.tr.Load(sb))

	// Every port a packet can enter the logical network by on a chassis
	// (VIFs and localnet ports) is bound, so every logical datapath is
	// local and every output lands on a datapath port.
	byPort := map[uint16]string{}
	var ports []datapath.Port
	for _, p := range sb.Ports {
		if p.Type != "" && p.Type != "localnet" {
			continue
		}
		no := uint16(len(ports) + 1)
		dev, peer := fmt.Sprintf("p%d", no), fmt.Sprintf("q%d", no)
		c.ns.MustRun(t, "ip", "link", "add", dev, "type", "veth", "peer", "name", peer)
		c.ns.MustRun(t, "ip", "link", "set", dev, "up")
		c.ns.MustRun(t, "ip", "link", "set", peer, "up")
		ifindex, err := c.ns.Ifindex(dev)
		require.NoError(t, err)
		c.ports[p.Name] = no
		c.ifindex[no] = ifindex
		c.captures[no] = netns.NewCapture(t, c.ns, peer)
		byPort[no] = p.Name
		ports = append(ports, datapath.Port{No: no, Ifindex: ifindex, Name: p.Name})
	}
	require.NotEmpty(t, ports, "no VIF in the Southbound")
	c.pipe.SetBindings(byPort)

	for _, dp := range []**datapath.Datapath{&c.parser, &c.cache} {
		d, err := datapath.Open(datapath.Config{UpcallRingBytes: 1 << 20})
		require.NoError(t, err, "loading the datapath (needs root and eBPF)")
		t.Cleanup(func() { d.Close() })
		for _, p := range ports {
			require.NoError(t, d.SetPort(p))
		}
		*dp = d
	}
	rd, err := ringbuf.NewReader(c.parser.UpcallMap())
	require.NoError(t, err)
	t.Cleanup(func() { rd.Close() })
	c.ring = rd
	return c
}

// run runs frame through the cache as arriving on port, in the chassis
// namespace, where the copies it clones to other ports go out.
func (c *chassisUnderTest) run(frame []byte, port uint16) datapath.RunResult {
	var r datapath.RunResult
	require.NoError(c.t, c.ns.Do(func() error {
		var err error
		r, err = c.cache.Run(frame, c.ifindex[port])
		return err
	}))
	return r
}

// --- decisions ---------------------------------------------------------------

// seedPacket is a packet of the suite: its header fields, as ovn-trace's
// microflow gives them, and the datapath port it enters by.
type seedPacket struct {
	label  string
	inport uint16
	pkt    field.Key
}

// seedPayload follows every test frame's headers.
var seedPayload = []byte("ovsbpf megaflow soundness")

func (s *seedPacket) frame(t testing.TB) []byte { return testframe.FromFields(t, &s.pkt, seedPayload) }

var microflowInport = regexp.MustCompile(`inport == "([^"]+)"`)

// seedPackets turns the suite's microflows into packets on bound ports.
// Microflows that enter by a router port, or that need conntrack state
// from ovn-trace's options, are what a chassis never receives from a VIF
// as they stand, and are left out.
func (c *chassisUnderTest) seedPackets(cases []traceCase) []seedPacket {
	var out []seedPacket
	for _, tc := range cases {
		m := microflowInport.FindStringSubmatch(tc.flow)
		if m == nil {
			continue
		}
		port, ok := c.ports[m[1]]
		if !ok || len(tc.ct) > 0 || tc.lbDst != "" {
			continue
		}
		res, err := c.tr.Trace(ovn.TraceRequest{Datapath: tc.dp, Microflow: tc.flow})
		require.NoError(c.t, err, "%s: parsing the microflow %s", tc.label, tc.flow)
		out = append(out, seedPacket{label: tc.label, inport: port, pkt: headersOnly(res.Packet)})
	}
	return out
}

// headersOnly clears what is not a packet bit: registers, metadata,
// conntrack state, in_port.
func headersOnly(k field.Key) field.Key {
	var out field.Key
	for _, d := range field.All() {
		if isHeader(d.ID) {
			out.Set(d.ID, k.Get(d.ID))
		}
	}
	return out
}

func isHeader(id field.ID) bool {
	switch id {
	case field.InPort, field.Metadata, field.TunID, field.PktMark, field.CTState, field.CTZone, field.CTMark, field.CTLabel,
		field.CTNwSrc, field.CTNwDst, field.CTIPv6Src, field.CTIPv6Dst, field.CTNwProto, field.CTTpSrc, field.CTTpDst:
		return false
	}
	return !field.IsRegister(id)
}

// parse runs frame through the parser datapath, which has no megaflows,
// and returns the key of the upcall it makes: what a handler gets.
func (c *chassisUnderTest) parse(frame []byte, port uint16) datapath.PacketKey {
	c.t.Helper()
	r, err := c.parser.Run(frame, c.ifindex[port])
	require.NoError(c.t, err)
	require.Equal(c.t, uint32(datapath.VerdictDrop), r.Verdict, "a miss is dropped, for the slow path to deliver")
	c.ring.SetDeadline(time.Now().Add(2 * time.Second))
	rec, err := c.ring.Read()
	require.NoError(c.t, err, "no upcall for frame %x: the parser dropped it", frame)
	u, err := datapath.ParseUpcall(rec.RawSample)
	require.NoError(c.t, err)
	require.Equal(c.t, datapath.UpcallMiss, u.Reason)
	return u.Key
}

// decision is what the slow path decides on one packet key.
type decision struct {
	label string
	pk    datapath.PacketKey
	pkt   field.Key // the pipeline's view of pk
	dec   upcall.Decision
	flow  upcall.Megaflow
	err   error // why it is not cached (it is then not checked further)
}

// decide decides pk exactly as a handler does, up to the install.
func (c *chassisUnderTest) decide(label string, pk datapath.PacketKey) *decision {
	d := &decision{label: label, pk: pk, pkt: upcall.PacketFields(&pk)}
	d.dec, d.err = c.pipe.Process(d.pkt)
	if d.err != nil {
		return d
	}
	acts, err := upcall.BuildActions(&d.pkt, &d.dec, nil)
	if err != nil {
		d.err = err
		return d
	}
	d.flow, d.err = upcall.CacheEntry(&pk, &d.dec, acts)
	return d
}

// sameMegaflow requires that got, a decision on a packet that agrees with
// want's on want's mask, is cached with the same mask and actions.
func (c *chassisUnderTest) sameMegaflow(want, got *decision) bool {
	c.t.Helper()
	if got.err == nil && got.flow.Mask == want.flow.Mask && slices.Equal(got.flow.Actions, want.flow.Actions) {
		return true
	}
	gotText := "not cacheable: " + fmt.Sprint(got.err)
	if got.err == nil {
		gotText = formatMegaflow(&got.flow)
	}
	c.t.Errorf("%s: a packet that agrees on every masked bit is decided differently\nmegaflow: %s\nits packet: %s\nagreeing packet: %s\ngets: %s\nreproduce with %s",
		want.label, formatMegaflow(&want.flow), ovn.FormatFlow(&want.pkt), ovn.FormatFlow(&got.pkt), gotText, envSoundnessSeed)
	return false
}

func formatMegaflow(f *upcall.Megaflow) string {
	return datapath.FormatFlow(&f.Key, &f.Mask) + " actions:" + datapath.FormatActions(f.Actions)
}

// randomAgreeing returns a packet key that agrees with pk on every bit of
// mask and is random everywhere else, in the narrow key the megaflow
// matches and in the wide part it never does, but for the fields a packet
// at recirc_id 0 always has zero.
func randomAgreeing(rng *rand.Rand, pk *datapath.PacketKey, mask *datapath.Mask) datapath.PacketKey {
	var out datapath.PacketKey
	fillRandom(rng, packetKeyBytes(&out))
	n := out.Narrow()
	nb, mb, pb := n.Raw(), mask.Raw(), pk.Narrow()
	pbb := pb.Raw()
	for i := range nb {
		nb[i] = nb[i]&^mb[i] | pbb[i]&mb[i]
	}
	// What the datapath never presents at recirc_id 0: conntrack state
	// (the parser fills it only after a ct action) and a tunnel id (no
	// tunnels yet). The mask matches on these where a decision read
	// them, and they are zero in every decided packet.
	n.CtState = 0
	if n.EtherType() != datapath.EthTypeARP { // for ARP the bytes hold arp_sha and arp_tha
		n.CtZone, n.CtMark = 0, 0
	}
	out.SetNarrow(n)
	out.W.CtLabel = [16]byte{}
	out.W.TunId = 0
	return out
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// --- variants ----------------------------------------------------------------

// variedFields are the header fields a variant may change.
var variedFields = []field.ID{
	field.EthSrc, field.EthDst, field.IPv4Src, field.IPv4Dst, field.IPv6Src, field.IPv6Dst,
	field.IPTTL, field.TCPSrc, field.TCPDst, field.ARPSHA, field.ARPTHA, field.NDTarget,
}

// fieldVocabulary holds, per field, the values the topology's microflows
// use, so that variants hit the pipeline's real decisions (another host's
// address, a blocked port) rather than nothing.
type fieldVocabulary map[field.ID][]field.Value

func vocabulary(seeds []seedPacket) fieldVocabulary {
	v := fieldVocabulary{}
	for _, s := range seeds {
		for _, id := range variedFields {
			val := s.pkt.Get(id)
			if !val.IsZero() && !slices.Contains(v[id], val) {
				v[id] = append(v[id], val)
			}
		}
	}
	return v
}

// variant returns s with one header field set to another value of the
// vocabulary, for a packet of the same kind (a field s carries).
func (v fieldVocabulary) variant(rng *rand.Rand, s seedPacket) seedPacket {
	out := s
	var carried []field.ID
	for _, id := range variedFields {
		if !s.pkt.Get(id).IsZero() && len(v[id]) > 1 {
			carried = append(carried, id)
		}
	}
	if len(carried) == 0 {
		return out
	}
	id := carried[rng.IntN(len(carried))]
	val := v[id][rng.IntN(len(v[id]))]
	out.pkt.Set(id, val)
	out.label = fmt.Sprintf("%s, with %s=%s", s.label, field.Lookup(id).Name, field.FormatValue(id, val))
	return out
}

// --- end to end --------------------------------------------------------------

func distinctMegaflows(ds []*decision) []*decision {
	type id struct{ mask, key datapath.Key }
	seen := map[id]bool{}
	var out []*decision
	for _, d := range ds {
		k := id{d.flow.Mask, d.flow.Key}
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

// batchesByMask splits megaflows into batches of at most n distinct masks.
func batchesByMask(ds []*decision, n int) [][]*decision {
	var masks []datapath.Mask
	byMask := map[datapath.Mask][]*decision{}
	for _, d := range ds {
		if _, ok := byMask[d.flow.Mask]; !ok {
			masks = append(masks, d.flow.Mask)
		}
		byMask[d.flow.Mask] = append(byMask[d.flow.Mask], d)
	}
	var out [][]*decision
	for len(masks) > 0 {
		k := min(n, len(masks))
		var batch []*decision
		for _, m := range masks[:k] {
			batch = append(batch, byMask[m]...)
		}
		out = append(out, batch)
		masks = masks[k:]
	}
	return out
}

func (c *chassisUnderTest) install(batch []*decision) {
	for _, d := range batch {
		_, err := c.cache.PutFlow(d.flow.Mask, d.flow.Key, d.flow.Actions)
		require.NoError(c.t, err, "installing %s", formatMegaflow(&d.flow))
	}
}

// runAgreeingFrame builds a random frame that agrees with d's packet on
// the fields d's megaflow masks, runs it through the cache datapath, and
// checks the result against the pipeline's decision on that frame. It
// reports whether the frame hit the cache.
func (c *chassisUnderTest) runAgreeingFrame(rng *rand.Rand, d *decision, installed []*decision) bool {
	t := c.t
	t.Helper()
	inport := d.pk.Narrow().InPort
	pkt := randomAgreeingFields(rng, d)
	frame := testframe.FromFields(t, &pkt, seedPayload)
	pk := c.parse(frame, inport)
	want := c.decide(d.label+" (random frame)", pk)

	before, err := c.cache.Counters()
	require.NoError(t, err)
	r := c.run(frame, inport)
	after, err := c.cache.Counters()
	require.NoError(t, err)

	var matching *decision
	narrow := pk.Narrow()
	for _, f := range installed {
		if narrow.And(&f.flow.Mask) == f.flow.Key {
			matching = f
			break
		}
	}
	if after.Misses > before.Misses {
		if matching != nil {
			t.Errorf("%s: frame %x missed the cache although megaflow %s matches it", d.label, frame, formatMegaflow(&matching.flow))
		}
		return false
	}
	if matching == nil {
		t.Errorf("%s: frame %x hit the cache although no installed megaflow matches its key %s (verdict %d)",
			d.label, frame, narrow.String(), r.Verdict)
		return true
	}
	// The frame hit: what the cache did must be what the pipeline
	// decides for it.
	if !c.sameMegaflow(matching, want) {
		return true
	}
	outs := want.dec.Outputs
	if len(outs) == 0 {
		require.Equal(t, uint32(datapath.VerdictDrop), r.Verdict, "%s: the pipeline drops frame %x, the cache did not", d.label, frame)
		return true
	}
	if r.Verdict != datapath.VerdictRedirect {
		t.Errorf("%s: the pipeline outputs frame %x with %s, the cache gave verdict %d (counters before %+v, after %+v)",
			d.label, frame, formatMegaflow(&matching.flow), r.Verdict, before, after)
		return true
	}
	// Every output but the last of the action list left as a clone, to
	// its port's veth; the last is the frame the program returns with
	// its redirect. The list may order the copies otherwise than the
	// pipeline (upcall.BuildActions), and a port may get more than one
	// (a switch's flood and a router's copy back to the same VM), so each
	// port's copies are compared with the pipeline's as sets.
	copies := map[uint16][]string{}
	for _, o := range outs {
		k := headersOnly(o.Key)
		copies[o.Port] = append(copies[o.Port], ovn.FormatFlow(&k))
	}
	redirectedTo := uint16(0)
	if last := matching.flow.Actions[len(matching.flow.Actions)-1]; last.Type == datapath.ActionOutput {
		redirectedTo = last.Port
	}
	if _, ok := copies[redirectedTo]; !ok {
		t.Errorf("%s: frame %x: the cache redirected it to port %d, to which the pipeline sends nothing", d.label, frame, redirectedTo)
		return true
	}
	for port, keys := range copies {
		var got []string
		sent := func(b []byte) {
			k := headersOnly(upcall.PacketFields(ptr(c.parse(b, port))))
			got = append(got, ovn.FormatFlow(&k))
		}
		clones := len(keys)
		if port == redirectedTo {
			sent(r.Frame)
			clones--
		}
		for range clones {
			b := c.captures[port].Next(outputWait)
			if b == nil {
				t.Errorf("%s: frame %x: port %d got %d of its %d copies", d.label, frame, port, len(got), len(keys))
				return true
			}
			sent(b)
		}
		slices.Sort(keys)
		slices.Sort(got)
		if !slices.Equal(keys, got) {
			t.Errorf("%s: the cache sent frame %x to port %d as\n  %s\nthe pipeline sends it as\n  %s",
				d.label, frame, port, strings.Join(got, "\n  "), strings.Join(keys, "\n  "))
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

// randomAgreeingFields returns header fields that agree with d's packet on
// every field bit d's megaflow masks, and are random elsewhere: random
// addresses, ports and TTLs, and, where the megaflow does not match on
// them, another Ethernet type or IP protocol, or a VLAN tag.
func randomAgreeingFields(rng *rand.Rand, d *decision) field.Key {
	fm := fieldMask(d)
	out := d.pkt
	for _, desc := range field.All() {
		if !isHeader(desc.ID) {
			continue
		}
		var b [16]byte
		fillRandom(rng, b[:])
		r := field.FromBytes(b[:desc.Size])
		keep := fm.Get(desc.ID)
		out.Set(desc.ID, out.Get(desc.ID).And(keep).Or(r.AndNot(keep)))
	}
	pick := func(id field.ID, choices ...uint64) {
		if fm.Get(id).IsZero() {
			out.Set(id, field.U64(choices[rng.IntN(len(choices))]))
		} else {
			out.Set(id, d.pkt.Get(id))
		}
	}
	pick(field.EthType, d.pkt.Get(field.EthType).Lo, field.EthTypeARP, 0x0800, 0x86dd, 0x88b5)
	pick(field.IPProto, d.pkt.Get(field.IPProto).Lo, 6, 17, 1, 58, 132, 253)
	pick(field.IPFrag, d.pkt.Get(field.IPFrag).Lo, 0, 1, 3)
	if fm.Get(field.VLANTCI).IsZero() && rng.IntN(4) != 0 {
		out.Set(field.VLANTCI, field.U64(0)) // most frames untagged
	}
	if out.Get(field.EthType).Lo == field.EthTypeARP && fm.Get(field.ARPOp).IsZero() {
		out.Set(field.ARPOp, field.U64(uint64(1+rng.IntN(2))))
	}
	return out
}

// fieldMask is d's megaflow mask in field terms: the narrow key's bytes
// mean what they mean for d's packet (ARP or not).
func fieldMask(d *decision) field.Key {
	m := d.flow.Mask
	asKey := m
	asKey.EthType = d.pk.Narrow().EthType // so that the bytes are read as d's packet's
	var pk datapath.PacketKey
	pk.SetNarrow(asKey)
	fm := upcall.PacketFields(&pk)
	if m.EthType != 0 {
		fm.Set(field.EthType, field.Ones(16))
	} else {
		fm.Set(field.EthType, field.U64(0))
	}
	return fm
}

// packetKeyBytes is pk's memory, narrow and wide parts and padding.
func packetKeyBytes(pk *datapath.PacketKey) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(pk)), unsafe.Sizeof(*pk))
}
