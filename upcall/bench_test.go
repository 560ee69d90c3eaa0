package upcall

import (
	"testing"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// The slow path's per-upcall work around the pipeline.
func BenchmarkHandlerSteps(b *testing.B) {
	pk := tcpKey()
	var read field.Mask
	for _, id := range []field.ID{field.InPort, field.EthSrc, field.EthDst, field.EthType, field.VLANTCI, field.Reg(14), field.Metadata} {
		read.AddField(id, field.Ones(field.Lookup(id).Bits))
	}
	pkt := PacketFields(&pk)
	outs := []Output{{Port: 2, Key: pkt}}
	b.Run("PacketFields", func(b *testing.B) {
		for b.Loop() {
			PacketFields(&pk)
		}
	})
	b.Run("MegaflowMask", func(b *testing.B) {
		for b.Loop() {
			if _, err := MegaflowMask(&read, &pk); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("BuildActions", func(b *testing.B) {
		for b.Loop() {
			if _, err := BuildActions(&pkt, &Decision{Outputs: outs}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
