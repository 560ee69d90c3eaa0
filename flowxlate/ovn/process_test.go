package ovn

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

func udpPacket(src, dst string, ttl uint8) field.Key {
	var k field.Key
	k.Set(field.EthSrc, mac(src))
	k.Set(field.EthDst, mac(dst))
	k.Set(field.EthType, field.U64(0x0800))
	k.Set(field.IPv4Src, field.FromBytes(netip.MustParseAddr("10.0.0.1").AsSlice()))
	k.Set(field.IPv4Dst, field.FromBytes(netip.MustParseAddr("10.0.0.2").AsSlice()))
	k.Set(field.IPProto, field.U64(17))
	k.Set(field.IPTTL, field.U64(uint64(ttl)))
	k.Set(field.UDPDst, field.U64(53))
	return k
}

func mac(s string) field.Value {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return field.FromBytes(hw)
}

func TestProcessPacket(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	tests := []struct {
		name    string
		inport  string
		pkt     field.Key
		outputs []string
		decided field.ID // a field the decision read
	}{
		{"unicast", "p1", udpPacket("00:00:00:00:00:01", "00:00:00:00:00:02", 64), []string{"p2"}, field.EthDst},
		{"flood", "p1", udpPacket("00:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", 64), []string{"p2", "p3"}, field.EthDst},
		{"port security", "p1", udpPacket("00:00:00:00:00:09", "00:00:00:00:00:02", 64), nil, field.EthSrc},
		{"egress ttl check", "p1", udpPacket("00:00:00:00:00:01", "00:00:00:00:00:02", 1), nil, field.IPTTL},
		{"from an unsecured port", "p3", udpPacket("00:00:00:00:00:07", "00:00:00:00:00:02", 64), []string{"p2"}, field.EthDst},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tr.ProcessPacket(tc.inport, tc.pkt, RunOptions{})
			require.NoError(t, err)
			var got []string
			for _, o := range res.Outputs {
				got = append(got, o.Port)
			}
			require.Equal(t, tc.outputs, got)
			require.Empty(t, res.Errors)
			require.False(t, res.Conntrack)
			require.NotZero(t, res.Mask.Get(tc.decided), "the mask has what decided: %s", tc.decided)
		})
	}
	_, err := tr.ProcessPacket("nope", field.Key{}, RunOptions{})
	require.ErrorContains(t, err, `logical port "nope"`)
}

// BenchmarkProcessPacket is the slow path's per-packet pipeline cost on a
// small switch.
func BenchmarkProcessPacket(b *testing.B) {
	tr := NewTranslator(Options{})
	if err := tr.Load(testSwitch()); err != nil {
		b.Fatal(err)
	}
	pkt := udpPacket("00:00:00:00:00:01", "00:00:00:00:00:02", 64)
	b.Run("back-to-back", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.ProcessPacket("p1", pkt, RunOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// As a slow path meets a trickle of new flows: after a millisecond's
	// sleep, on a CPU that went idle. Its percentiles, beside the
	// back-to-back mean, say how much of a handler's latency is the
	// machine waking up rather than the pipeline. (Its ns/op counts the
	// sleep, so that the default benchtime makes about a thousand calls.)
	b.Run("after-1ms-sleep", func(b *testing.B) {
		var took []time.Duration
		for b.Loop() {
			time.Sleep(time.Millisecond)
			start := time.Now()
			if _, err := tr.ProcessPacket("p1", pkt, RunOptions{}); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
	})
}

// Deciding without a trace reads the same bits and sends the same packets
// as a traced run.
func TestProcessPacketMatchesTracedRun(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	for _, pkt := range []field.Key{
		udpPacket("00:00:00:00:00:01", "00:00:00:00:00:02", 64),
		udpPacket("00:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", 64),
		udpPacket("00:00:00:00:00:09", "00:00:00:00:00:02", 64),
		udpPacket("00:00:00:00:00:01", "00:00:00:00:00:02", 1),
	} {
		quiet, err := tr.ProcessPacket("p1", pkt, RunOptions{})
		require.NoError(t, err)

		p := tr.w.ports["p1"]
		k := pkt
		k.Set(field.Reg(regLogInport), field.U64(uint64(p.key)))
		env := newEnv(tr.w, RunOptions{})
		traced := interp.New(tr.prog, env).Run(k, func(c ir.ExecContext) {
			c.At(p.dp.pipeline(pipelineIngress), 0).Lookup()
		})
		require.NotEmpty(t, traced.Trace)
		require.Equal(t, traced.Mask, quiet.Mask)
		require.Equal(t, len(traced.Deliveries()), len(quiet.Outputs))
		for i := range quiet.Outputs {
			require.Equal(t, traced.Deliveries()[i].Key, quiet.Outputs[i].Key)
		}
	}
}
