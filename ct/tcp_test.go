package ct_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/ct"
)

// The client's and server's initial sequence numbers.
const (
	isnA = 1000
	isnB = 5000
)

// handshake is a SYN, SYN|ACK, ACK exchange, committed in zone 5.
func handshake() []step {
	return []step{
		tcpStep("syn", pZone5Commit, newTrk, seg{d: fwd, flags: "S", seq: isnA, win: 65535}),
		tcpStep("syn retransmitted", pZone5Commit, newTrk, seg{d: fwd, flags: "S", seq: isnA, win: 65535}),
		tcpStep("syn|ack", pZone5Commit, estRplTrk, seg{d: rev, flags: "SA", seq: isnB, ack: isnA + 1, win: 65535}),
		tcpStep("ack", pZone5Commit, estTrk, seg{d: fwd, flags: "A", seq: isnA + 1, ack: isnB + 1, win: 65535}),
	}
}

func TestTCPLifecycle(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)

	tr.play(t, handshake()[:1])
	e := tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSSynSent, ct.TCPSClosed}, e.TCP)
	require.Equal(t, "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1234,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1234),zone=5,protoinfo=(state=SYN_SENT)", e.String())
	require.InDelta(t, ct.TCPFirstPacket.Default().Seconds(), e.Timeout.Seconds(), 1)

	tr.play(t, handshake()[1:])
	e = tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSEstablished, ct.TCPSEstablished}, e.TCP)
	require.Contains(t, e.String(), "protoinfo=(state=ESTABLISHED)")
	require.InDelta(t, ct.TCPEstablished.Default().Seconds(), e.Timeout.Seconds(), 1)

	tr.play(t, []step{
		tcpStep("data", pZone5, estTrk, seg{d: fwd, flags: "PA", seq: isnA + 1, ack: isnB + 1, win: 65535, data: 100}),
		tcpStep("data back", pZone5, estRplTrk, seg{d: rev, flags: "PA", seq: isnB + 1, ack: isnA + 101, win: 65535, data: 200}),
		tcpStep("retransmitted data", pZone5, estTrk, seg{d: fwd, flags: "PA", seq: isnA + 1, ack: isnB + 1, win: 65535, data: 100}),
		tcpStep("fin", pZone5, estTrk, seg{d: fwd, flags: "FA", seq: isnA + 101, ack: isnB + 201, win: 65535}),
	})
	e = tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSClosing, ct.TCPSEstablished}, e.TCP)
	require.InDelta(t, ct.TCPClosing.Default().Seconds(), e.Timeout.Seconds(), 1)

	tr.play(t, []step{
		tcpStep("ack of fin", pZone5, estRplTrk, seg{d: rev, flags: "A", seq: isnB + 201, ack: isnA + 102, win: 65535}),
		tcpStep("fin back", pZone5, estRplTrk, seg{d: rev, flags: "FA", seq: isnB + 201, ack: isnA + 102, win: 65535}),
	})
	e = tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSFinWait2, ct.TCPSClosing}, e.TCP)
	require.InDelta(t, ct.TCPFinWait.Default().Seconds(), e.Timeout.Seconds(), 1)

	tr.play(t, []step{tcpStep("last ack", pZone5, estTrk, seg{d: fwd, flags: "A", seq: isnA + 102, ack: isnB + 202, win: 65535})})
	e = tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSFinWait2, ct.TCPSFinWait2}, e.TCP)
	require.Contains(t, e.String(), "protoinfo=(state=TIME_WAIT)", "OVS shows FIN_WAIT_2 as TIME_WAIT")
	require.InDelta(t, ct.TCPClosed.Default().Seconds(), e.Timeout.Seconds(), 1)

	// The client reuses the port: the SYN replaces the closed connection.
	tr.play(t, []step{tcpStep("syn reusing the port", pZone5Commit, newTrk, seg{d: fwd, flags: "S", seq: 90000, win: 65535})})
	e = tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSSynSent, ct.TCPSClosed}, e.TCP)
	tr.play(t, []step{tcpStep("its syn|ack", pZone5, estRplTrk, seg{d: rev, flags: "SA", seq: 70000, ack: 90001, win: 65535})})

	c, err := tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(2), c.Created)
	require.Equal(t, uint64(1), c.Replaced)
	require.Equal(t, uint32(1), tr.tab.NConns())
}

func TestTCPReset(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, handshake())
	tr.play(t, []step{
		tcpStep("rst far out of window", pZone5, invTrk, seg{d: rev, flags: "R", seq: isnB + 1 + 100000}),
		tcpStep("rst one byte off the next sequence number is still not exact enough", pZone5, invTrk, seg{d: rev, flags: "R", seq: isnB + 3}),
	})
	require.Equal(t, [2]ct.TCPState{ct.TCPSEstablished, ct.TCPSEstablished}, tr.dumpOne(t, 5).TCP, "an invalid RST leaves the connection as it was")
	tr.play(t, []step{tcpStep("rst in window", pZone5, estRplTrk, seg{d: rev, flags: "R", seq: isnB + 1})})
	e := tr.dumpOne(t, 5)
	require.Equal(t, [2]ct.TCPState{ct.TCPSTimeWait, ct.TCPSTimeWait}, e.TCP, "OVS moves both sides to TIME_WAIT on a reset")
	require.InDelta(t, ct.TCPClosed.Default().Seconds(), e.Timeout.Seconds(), 1)
	tr.play(t, []step{tcpStep("a new syn after the reset", pZone5Commit, newTrk, seg{d: fwd, flags: "S", seq: 424242, win: 65535})})
	require.Equal(t, [2]ct.TCPState{ct.TCPSSynSent, ct.TCPSClosed}, tr.dumpOne(t, 5).TCP)
}

func TestTCPInvalid(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	// Nothing opens a connection but a SYN without ACK.
	tr.play(t, []step{
		tcpStep("unsolicited ack", pZone5Commit, invTrk, seg{d: fwd, flags: "A", seq: 1, ack: 1, win: 100}),
		tcpStep("unsolicited syn|ack", pZone5Commit, invTrk, seg{d: fwd, flags: "SA", seq: 1, ack: 1, win: 100}),
		tcpStep("syn|fin", pZone5Commit, invTrk, seg{d: fwd, flags: "SF", seq: 1, win: 100}),
		tcpStep("no flags", pZone5Commit, invTrk, seg{d: fwd, flags: "", seq: 1, win: 100}),
		tcpStep("unsolicited fin|ack", pZone5Commit, invTrk, seg{d: fwd, flags: "FA", seq: 1, ack: 1, win: 100}),
	})
	require.Empty(t, tr.dumpStrings(t, nil), "an invalid packet stores nothing, even under commit")
	c, err := tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(5), c.InvalidNoConn)

	tr.play(t, handshake())
	for _, s := range []step{
		tcpStep("syn|rst", pZone5, invTrk, seg{d: fwd, flags: "SR", seq: isnA + 1, win: 65535}),
		tcpStep("syn|fin", pZone5, invTrk, seg{d: fwd, flags: "SF", seq: isnA + 1, win: 65535}),
		tcpStep("no flags", pZone5, invTrk, seg{d: fwd, flags: "", seq: isnA + 1, win: 65535}),
		tcpStep("fin without ack", pZone5, invTrk, seg{d: fwd, flags: "F", seq: isnA + 1, win: 65535}),
		tcpStep("psh without ack", pZone5, invTrk, seg{d: rev, flags: "P", seq: isnB + 1, win: 65535, data: 10}),
		tcpStep("urg without ack", pZone5, invTrk, seg{d: rev, flags: "U", seq: isnB + 1, win: 65535}),
	} {
		tr.play(t, []step{s})
	}
	c, err = tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(6), c.InvalidFlags)
	require.Equal(t, [2]ct.TCPState{ct.TCPSEstablished, ct.TCPSEstablished}, tr.dumpOne(t, 5).TCP)
}

func TestTCPWindow(t *testing.T) {
	tr := loadTracker(t, 0)
	tr.setParams(t)
	tr.play(t, handshake())
	beyond := seg{d: fwd, flags: "PA", seq: isnA + 1 + 200000, ack: isnB + 1, win: 65535, data: 10}
	tr.play(t, []step{
		tcpStep("data past the receiver's window", pZone5, invTrk, beyond),
		tcpStep("data a window back", pZone5, invTrk, seg{d: fwd, flags: "PA", seq: wrapSub(isnA+1, 100000), ack: isnB + 1, win: 65535, data: 10}),
		tcpStep("ack of data never sent", pZone5, invTrk, seg{d: fwd, flags: "A", seq: isnA + 1, ack: isnB + 1 + 300000, win: 65535}),
		tcpStep("in window", pZone5, estTrk, seg{d: fwd, flags: "PA", seq: isnA + 1, ack: isnB + 1, win: 65535, data: 10}),
	})
	c, err := tr.tab.Counters()
	require.NoError(t, err)
	require.Equal(t, uint64(3), c.InvalidWindow)

	// Liberal: the same segment passes; the state machine still runs.
	require.NoError(t, tr.tab.SetLiberal(true))
	on, err := tr.tab.Liberal()
	require.NoError(t, err)
	require.True(t, on)
	tr.play(t, []step{
		tcpStep("past the window, liberal", pZone5, estTrk, beyond),
		tcpStep("invalid flags stay invalid when liberal", pZone5, invTrk, seg{d: fwd, flags: "SF", seq: isnA + 1, win: 65535}),
	})
	require.NoError(t, tr.tab.SetLiberal(false))
}

// With window scaling negotiated, a segment within the scaled window
// passes; without it, the same segment is out of window.
func TestTCPWindowScaling(t *testing.T) {
	for _, scaled := range []bool{true, false} {
		t.Run(map[bool]string{true: "scaled", false: "unscaled"}[scaled], func(t *testing.T) {
			tr := loadTracker(t, 0)
			tr.setParams(t)
			want := estRplTrk
			if !scaled {
				want = invTrk
			}
			tr.play(t, []step{
				tcpStep("syn", pZone5Commit, newTrk, seg{d: fwd, flags: "S", seq: isnA, win: 65535, withWS: scaled, ws: 2}),
				tcpStep("syn|ack", pZone5, estRplTrk, seg{d: rev, flags: "SA", seq: isnB, ack: isnA + 1, win: 65535, withWS: scaled, ws: 7}),
				tcpStep("ack", pZone5, estTrk, seg{d: fwd, flags: "A", seq: isnA + 1, ack: isnB + 1, win: 65535}),
				tcpStep("data 200 kB ahead", pZone5, want, seg{d: rev, flags: "PA", seq: isnB + 1 + 200000, ack: isnA + 1, win: 65535, data: 100}),
			})
		})
	}
}

// wrapSub subtracts in sequence space (mod 2^32).
func wrapSub(a, b uint32) uint32 { return a - b }
