package ct_test

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/bpf/testprogs"
	"github.com/ovsbpf/ovsbpf/ct"
)

// The Go types package ct generated from ct/layout.c must match what an
// object that includes ct.h (here test_ct) carries in its BTF, so a
// change to ct.h that one side did not follow fails here.
func TestLayoutMatchesBTF(t *testing.T) {
	spec, err := testprogs.LoadTestCt()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		size uintptr
	}{
		{"ovsbpf_ct_conn4", unsafe.Sizeof(ct.RawConn{})},
		{"ovsbpf_ct_params", unsafe.Sizeof(ct.RawParams{})},
		{"ovsbpf_ct_tuple4", unsafe.Sizeof(ct.RawTuple{})},
		{"ovsbpf_ct_ref", unsafe.Sizeof(ct.RawRef{})},
	} {
		var s *btf.Struct
		require.NoError(t, spec.Types.TypeByName(tc.name, &s), tc.name)
		require.Equal(t, uintptr(s.Size), tc.size, "size of %s", tc.name)
	}
	for name, want := range map[string]uint32{
		"ct_conns4": uint32(unsafe.Sizeof(ct.RawConn{})),
		"ct_params": uint32(unsafe.Sizeof(ct.RawParams{})),
	} {
		require.Equal(t, want, spec.Maps[name].ValueSize, "value size of %s", name)
	}
	require.Equal(t, uint32(unsafe.Sizeof(ct.RawTuple{})), spec.Maps["ct_index4"].KeySize)
	require.Equal(t, ct.Capacity, spec.Maps["ct_conns4"].MaxEntries)
}
