package ct_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/ct"
)

func udpStep(name string, params uint32, want uint8, d dir, sport uint16) step {
	return step{name: name, params: params, want: want, frame: func(t *testing.T) []byte { return udp(t, d, sport, 53) }}
}

func icmpStep(name string, params uint32, want uint8, d dir, typ uint8, id uint16) step {
	return step{name: name, params: params, want: want, frame: func(t *testing.T) []byte { return icmp(t, d, typ, id) }}
}

func TestUDP(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, []step{
		udpStep("first", pZone5Commit, newTrk, fwd, 1000),
		udpStep("second, no reply yet", pZone5Commit, newTrk, fwd, 1000),
	})
	e := tr.dumpOne(t, 5)
	require.Equal(t, "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=5", e.String())
	require.InDelta(t, ct.OtherMultiple.Default().Seconds(), e.Timeout.Seconds(), 1)
	require.False(t, e.SeenReply)

	require.NoError(t, tr.tab.SetTimeout(ct.OtherBidir, 150*time.Millisecond))
	tr.play(t, []step{
		udpStep("reply", pZone5, estRplTrk, rev, 1000),
		udpStep("after the reply", pZone5, estTrk, fwd, 1000),
	})
	e = tr.dumpOne(t, 5)
	require.True(t, e.SeenReply)
	require.LessOrEqual(t, e.Timeout, 150*time.Millisecond)

	// Expired is absent: to lookups, to dumps, and Expire takes it away.
	time.Sleep(300 * time.Millisecond)
	require.Empty(t, tr.dumpStrings(t, nil))
	tr.play(t, []step{
		udpStep("after expiry, without commit", pZone5, newTrk, fwd, 1000),
		udpStep("its reply is new too: no connection", pZone5, newTrk, rev, 1000),
	})
	require.Equal(t, uint32(1), tr.tab.NConns(), "expired but not reclaimed yet")
	n, err := tr.tab.Expire()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, uint32(0), tr.tab.NConns())

	timeouts, err := tr.tab.Timeouts()
	require.NoError(t, err)
	require.Equal(t, 150*time.Millisecond, timeouts[ct.OtherBidir])
	require.Equal(t, 24*time.Hour, timeouts[ct.TCPEstablished])
}

// A commit that meets an expired connection of its own tuple reclaims
// it and starts afresh.
func TestExpiredReclaimedByCommit(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	require.NoError(t, tr.tab.SetTimeout(ct.OtherFirst, 50*time.Millisecond))
	tr.play(t, []step{udpStep("first", pZone5Commit, newTrk, fwd, 1000)})
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, tr.tab.SetTimeout(ct.OtherFirst, 0))
	tr.play(t, []step{
		udpStep("again, committed", pZone5Commit, newTrk, fwd, 1000),
		udpStep("reply", pZone5, estRplTrk, rev, 1000),
	})
	c, err := tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(1), c.Reclaimed)
	require.Equal(t, uint64(2), c.Created)
	require.Equal(t, uint32(1), tr.tab.NConns())
	require.Len(t, tr.dumpStrings(t, nil), 1)
}

func TestICMPEcho(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, []step{
		icmpStep("echo request", pZone5Commit, newTrk, fwd, 8, 7),
		icmpStep("echo reply", pZone5, estRplTrk, rev, 0, 7),
		icmpStep("next request", pZone5, estTrk, fwd, 8, 7),
		icmpStep("a reply nobody asked for", pZone5Commit, invTrk, rev, 0, 8),
		icmpStep("a reply in the request's direction", pZone5Commit, invTrk, fwd, 0, 7),
		icmpStep("an error (related: a later step)", pZone5Commit, invTrk, rev, 3, 0),
	})
	e := tr.dumpOne(t, 5)
	require.Equal(t, "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=7,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=7,type=0,code=0),zone=5", e.String())
	require.InDelta(t, ct.ICMPReply.Default().Seconds(), e.Timeout.Seconds(), 1)
}

// Without commit a new connection is reported and nothing is stored.
func TestCommitStores(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, []step{
		udpStep("no commit", pZone5, newTrk, fwd, 1000),
		udpStep("no commit again", pZone5, newTrk, fwd, 1000),
		udpStep("a reply finds nothing", pZone5, newTrk, rev, 1000),
	})
	require.Empty(t, tr.dumpStrings(t, nil))
	tr.play(t, []step{
		udpStep("commit", pZone5Commit, newTrk, fwd, 1000),
		udpStep("reply", pZone5, estRplTrk, rev, 1000),
	})
	require.Len(t, tr.dumpStrings(t, nil), 1)
}

func TestZonesIsolate(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, []step{udpStep("commit in zone 5", pZone5Commit, newTrk, fwd, 1000)})
	r := tr.run(t, pZone6, udp(t, rev, 1000, 53))
	require.Equal(t, ct.StateString(newTrk), ct.StateString(r.CtState), "zone 6 knows nothing of zone 5")
	require.Equal(t, uint16(6), r.CtZone)
	r = tr.run(t, pZone5, udp(t, rev, 1000, 53))
	require.Equal(t, ct.StateString(estRplTrk), ct.StateString(r.CtState))
	require.Equal(t, uint16(5), r.CtZone)

	tr.play(t, []step{udpStep("the same tuple committed in zone 6", pZone6Commit, newTrk, fwd, 1000)})
	require.Equal(t, []string{
		"udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=5",
		"udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=6",
	}, tr.dumpStrings(t, nil))
}

func TestMarkAndLabel(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	r := tr.run(t, pZone5, udp(t, fwd, 1000, 53))
	require.Zero(t, r.CtMark, "no commit, no write")
	r = tr.run(t, pMarkLabel, udp(t, fwd, 1000, 53))
	require.Equal(t, ct.StateString(newTrk), ct.StateString(r.CtState))
	require.Equal(t, uint32(1), r.CtMark)
	wantLabel := [16]uint8{0x80, 15: 0x01}
	require.Equal(t, wantLabel, r.CtLabel)

	r = tr.run(t, pZone5, udp(t, rev, 1000, 53))
	require.Equal(t, ct.StateString(estRplTrk), ct.StateString(r.CtState))
	require.Equal(t, uint32(1), r.CtMark, "the connection's mark on every packet")
	require.Equal(t, wantLabel, r.CtLabel)

	r = tr.run(t, pZone6, udp(t, rev, 1000, 53))
	require.Zero(t, r.CtMark, "another zone: another connection's (none) mark")

	// A commit on an existing connection writes too (OVN's
	// ct_commit { ct_mark.blocked = 1; }), and only the masked bits.
	require.NoError(t, tr.tab.SetParams(pMarkLabel, ct.Params{Zone: 5, Commit: true, SetMark: true, Mark: 0x10, MarkMask: 0x10}))
	r = tr.run(t, pMarkLabel, udp(t, fwd, 1000, 53))
	require.Equal(t, uint32(0x11), r.CtMark)
	require.Equal(t, "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=5,mark=17,labels=0x80000000000000000000000000000001",
		tr.dumpOne(t, 5).String())

	_, err := ct.Params{Zone: 1, SetMark: true, MarkMask: 1}.Encode()
	require.Error(t, err, "a write without commit")
}

// force ends a connection met in its reply direction; with commit the
// packet starts one the other way round.
func TestForce(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, []step{
		udpStep("commit", pZone5Commit, newTrk, fwd, 1000),
		udpStep("force from the other side", pForce, newTrk, rev, 1000),
		udpStep("the old direction is now the reply", pZone5, estRplTrk, fwd, 1000),
	})
	require.Equal(t, "udp,orig=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),reply=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),zone=5",
		tr.dumpOne(t, 5).String())
}

func TestTableFull(t *testing.T) {
	const capacity = 4
	tr := loadTracker(t, capacity)
	tr.setParams(t)
	require.Equal(t, uint32(capacity), tr.tab.Capacity())
	for sport := uint16(1); sport <= capacity; sport++ {
		tr.play(t, []step{udpStep("fill", pZone5Commit, newTrk, fwd, sport)})
	}
	tr.play(t, []step{
		udpStep("one more is refused", pZone5Commit, invTrk, fwd, 100),
		udpStep("without commit it is only new", pZone5, newTrk, fwd, 100),
		udpStep("existing connections still work", pZone5, estRplTrk, rev, 1),
	})
	c, err := tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(1), c.RefusedFull)
	require.Equal(t, uint32(capacity), tr.tab.NConns())

	require.ErrorIs(t, tr.tab.SetMaxConns(capacity+1), ct.ErrTooMany)
	require.NoError(t, tr.tab.SetMaxConns(2))
	m, err := tr.tab.MaxConns()
	require.NoError(t, err)
	require.Equal(t, uint32(2), m)

	n, err := tr.tab.Flush(nil)
	require.NoError(t, err)
	require.Equal(t, capacity, n)
	require.Equal(t, uint32(0), tr.tab.NConns())
	require.Empty(t, tr.dumpStrings(t, nil))
	tr.play(t, []step{
		udpStep("after the flush", pZone5Commit, newTrk, fwd, 1),
		udpStep("its reply", pZone5, estRplTrk, rev, 1),
		udpStep("second of two", pZone5Commit, newTrk, fwd, 2),
		udpStep("third over max_conns", pZone5Commit, invTrk, fwd, 3),
	})
	c, err = tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(2), c.RefusedFull)
	require.Equal(t, uint32(2), tr.tab.NConns())
}

func TestFlushZoneAndStats(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, handshake())
	tr.play(t, []step{
		udpStep("udp in zone 6", pZone6Commit, newTrk, fwd, 1000),
		icmpStep("ping in zone 0", pZone0Commit, newTrk, fwd, 8, 9),
		udpStep("udp in zone 0", pZone0Commit, newTrk, fwd, 1000),
	})
	require.Equal(t, []string{
		"icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=9,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=9,type=0,code=0)",
		"udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000)",
		"tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1234),zone=5,protoinfo=(state=ESTABLISHED)",
		"udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=1000),zone=6",
	}, tr.dumpStrings(t, nil))

	s, err := tr.tab.Stats(nil)
	require.NoError(t, err)
	require.Equal(t, "Connections Stats:\n    Total: 4\n  TCP: 1\n  UDP: 2\n  ICMP: 1\n", s.Format(false))
	require.Equal(t, "Connections Stats:\n    Total: 4\n  TCP: 1\n    Conn per TCP states:\n\t  [ESTABLISHED]=1\n  UDP: 2\n  ICMP: 1\n", s.Format(true))
	zone := uint16(5)
	s, err = tr.tab.Stats(&zone)
	require.NoError(t, err)
	require.Equal(t, "Connections Stats:\n    Total: 1\n  TCP: 1\n", s.Format(false))

	n, err := tr.tab.Flush(&zone)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Len(t, tr.dumpStrings(t, nil), 3)
	tr.play(t, []step{tcpStep("the flushed connection is gone", pZone5, invTrk, seg{d: fwd, flags: "A", seq: isnA + 1, ack: isnB + 1, win: 65535})})

	zone = 0
	n, err = tr.tab.Flush(&zone)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	zone = 6
	require.Len(t, tr.dumpStrings(t, &zone), 1)
	require.Equal(t, uint32(1), tr.tab.NConns())
}
