package datapath

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/bpf"
)

func TestParseUpcallRejectsBadRecords(t *testing.T) {
	var rec bpf.DatapathOvsbpfUpcall
	hdr := int(unsafe.Offsetof(rec.Frame))
	good := make([]byte, hdr+60)
	binary.LittleEndian.PutUint32(good[unsafe.Offsetof(rec.Reason):], uint32(UpcallMiss))
	binary.LittleEndian.PutUint32(good[unsafe.Offsetof(rec.Len):], 60)
	binary.LittleEndian.PutUint32(good[unsafe.Offsetof(rec.FrameLen):], 60)
	u, err := ParseUpcall(good)
	require.NoError(t, err)
	require.Len(t, u.Frame, 60)
	require.Equal(t, UpcallMiss, u.Reason)

	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"header cut", good[:hdr-1]},
		{"frame cut", good[:hdr+59]},
		{"frame longer than an upcall carries", func() []byte {
			b := make([]byte, hdr+MaxUpcallFrame+8)
			binary.LittleEndian.PutUint32(b[unsafe.Offsetof(rec.Len):], uint32(MaxUpcallFrame+1))
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseUpcall(tc.raw)
			require.Error(t, err)
		})
	}
}

func FuzzParseUpcall(f *testing.F) {
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, raw []byte) {
		u, err := ParseUpcall(raw)
		if err == nil && len(u.Frame) > MaxUpcallFrame {
			t.Fatalf("frame of %d bytes", len(u.Frame))
		}
	})
}
