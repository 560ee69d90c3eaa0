package datapath

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/bpf"
	"github.com/ovsbpf/ovsbpf/ct"
)

// The C is the one definition of every layout and limit the datapath
// shares with Go. This test reads the embedded object's BTF and map specs
// (what the kernel gets) and checks every Go type that mirrors a C struct,
// field by field, every map's key and value, and every Go limit against
// the map it bounds. Generated bindings that fell behind the object, a
// hand-written mirror, a map sized by a literal instead of its limit, or a
// field moved out from under an overlay Go relies on, all fail here
// rather than in a kernel that reads the wrong bytes. It needs no root.

// mirror is a Go type that has a C struct's layout.
type mirror struct {
	c   string       // the C struct's name
	goT reflect.Type // its Go mirror
	// upTo, when set, makes the mirror a prefix of the C struct that
	// ends with this member (struct __sk_buff, of which a test run
	// takes only the head).
	upTo string
}

func mirrors() []mirror {
	return []mirror{
		{c: "ovsbpf_narrow", goT: reflect.TypeFor[Key]()}, // and Mask, its alias
		{c: "ovsbpf_key", goT: reflect.TypeFor[PacketKey]()},
		{c: "ovsbpf_wide", goT: reflect.TypeFor[bpf.DatapathOvsbpfWide]()},
		{c: "ovsbpf_mask", goT: reflect.TypeFor[bpf.DatapathOvsbpfMask]()},
		{c: "ovsbpf_action", goT: reflect.TypeFor[bpf.DatapathOvsbpfAction]()},
		{c: "ovsbpf_actions", goT: reflect.TypeFor[bpf.DatapathOvsbpfActions]()},
		{c: "ovsbpf_stats", goT: reflect.TypeFor[bpf.DatapathOvsbpfStats]()},
		{c: "ovsbpf_emc_entry", goT: reflect.TypeFor[bpf.DatapathOvsbpfEmcEntry]()},
		{c: "ovsbpf_port", goT: reflect.TypeFor[bpf.DatapathOvsbpfPort]()},
		{c: "ovsbpf_upcall", goT: reflect.TypeFor[bpf.DatapathOvsbpfUpcall]()},
		{c: "ovsbpf_clock", goT: reflect.TypeFor[bpf.DatapathOvsbpfClock]()},
		{c: "ovsbpf_exec_meta", goT: reflect.TypeFor[bpf.DatapathOvsbpfExecMeta]()},
		{c: "__sk_buff", goT: reflect.TypeFor[skbContext](), upTo: "cb"},
	}
}

// mapLayout is what Go writes into and reads from one map.
type mapLayout struct {
	key, value reflect.Type // nil: the map has none (a ring buffer)
	entries    uint32       // the Go limit that sizes it
}

func mapLayouts() map[string]mapLayout {
	u32, u64 := reflect.TypeFor[uint32](), reflect.TypeFor[uint64]()
	return map[string]mapLayout{
		// The compiled sizes; Open sets them from Config.MaxFlows.
		bpf.DatapathMapFlows:            {reflect.TypeFor[Key](), u32, uint32(DefaultMaxFlows)},
		bpf.DatapathMapFlowActions:      {u32, reflect.TypeFor[bpf.DatapathOvsbpfActions](), uint32(DefaultMaxFlows) + 1},
		bpf.DatapathMapFlowStats:        {u32, reflect.TypeFor[bpf.DatapathOvsbpfStats](), uint32(DefaultMaxFlows) + 1},
		bpf.DatapathMapFlowUsed:         {u32, u64, uint32(DefaultMaxFlows) + 1},
		bpf.DatapathMapActionBlocks:     {u32, reflect.TypeFor[bpf.DatapathOvsbpfActions](), execBlocks(actionPool(DefaultMaxFlows), uint32(MaxExecutors))},
		bpf.DatapathMapMasks:            {u32, reflect.TypeFor[bpf.DatapathOvsbpfMask](), MaxMasks},
		bpf.DatapathMapMaskOrder:        {u32, reflect.TypeFor[bpf.DatapathOvsbpfMaskOrder](), 1},
		bpf.DatapathMapMaskHits:         {u32, u64, MaxMasks},
		bpf.DatapathMapPorts:            {u32, reflect.TypeFor[bpf.DatapathOvsbpfPort](), uint32(MaxPorts)},
		bpf.DatapathMapPortOfIfindex:    {u32, u32, ifindexSlots},
		bpf.DatapathMapPortOfBigIfindex: {u32, u32, uint32(MaxPorts)},
		bpf.DatapathMapExecActions:      {u32, reflect.TypeFor[bpf.DatapathOvsbpfActions](), uint32(MaxExecutors)},
		bpf.DatapathMapExecMeta:         {u32, reflect.TypeFor[bpf.DatapathOvsbpfExecMeta](), uint32(MaxExecutors)},
		bpf.DatapathMapEmc:              {u32, reflect.TypeFor[bpf.DatapathOvsbpfEmcEntry](), uint32(bpf.DatapathOvsbpfTableSizeOVSBPF_EMC_SLOTS)},
		bpf.DatapathMapCounters:         {u32, u64, uint32(bpf.DatapathOvsbpfCounterOVSBPF_CNT__MAX)},
		bpf.DatapathMapDrops:            {u32, u64, uint32(bpf.DatapathOvsbpfDropOVSBPF_DROP__MAX)},
		bpf.DatapathMapUpcallScratch:    {u32, reflect.TypeFor[bpf.DatapathOvsbpfUpcall](), 1},
		bpf.DatapathMapUpcalls:          {nil, nil, DefaultUpcallRingBytes},
		bpf.DatapathMapClock:            {u32, reflect.TypeFor[bpf.DatapathOvsbpfClock](), 1},
		bpf.DatapathMapIngressKey:       {u32, reflect.TypeFor[PacketKey](), 1},
		bpf.DatapathMapExecKeys:         {u32, reflect.TypeFor[PacketKey](), uint32(MaxExecutors)},
		// Conntrack: package ct reads and writes these (ct.Table).
		bpf.DatapathMapCtIndex4:   {reflect.TypeFor[ct.RawTuple](), reflect.TypeFor[ct.RawRef](), 2 * ct.Capacity},
		bpf.DatapathMapCtConns4:   {u32, reflect.TypeFor[ct.RawConn](), ct.Capacity},
		bpf.DatapathMapCtFree4:    {nil, u32, ct.Capacity},
		bpf.DatapathMapCtParams:   {u32, reflect.TypeFor[ct.RawParams](), ct.MaxParams},
		bpf.DatapathMapCtTimeouts: {u32, u32, ct.TimeoutClasses},
		bpf.DatapathMapCtConfig:   {u32, reflect.TypeFor[ct.RawConfig](), 1},
		bpf.DatapathMapCtAlloc:    {u32, reflect.TypeFor[ct.RawAlloc](), 1},
		bpf.DatapathMapCtCounters: {u32, u64, ct.NumCounters},
	}
}

func loadSpec(t *testing.T) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := bpf.LoadDatapath()
	require.NoError(t, err, "reading the embedded datapath object")
	return spec
}

func cStruct(t *testing.T, spec *ebpf.CollectionSpec, name string) *btf.Struct {
	t.Helper()
	var s *btf.Struct
	require.NoError(t, spec.Types.TypeByName(name, &s), "struct %s in the object's BTF", name)
	return s
}

func TestLayoutMatchesBTF(t *testing.T) {
	spec := loadSpec(t)

	t.Run("mirrors", func(t *testing.T) {
		for _, m := range mirrors() {
			t.Run(m.c, func(t *testing.T) {
				require.Empty(t, compareStruct(cStruct(t, spec, m.c), m.goT, m.upTo, m.c))
			})
		}
	})

	t.Run("maps", func(t *testing.T) {
		layouts := mapLayouts()
		for _, ms := range pinnedMaps(spec) {
			t.Run(ms.Name, func(t *testing.T) {
				want, ok := layouts[ms.Name]
				require.True(t, ok, "map %s has no Go layout in this test: say what Go reads and writes there", ms.Name)
				require.Equal(t, want.entries, ms.MaxEntries, "map %s: max_entries against Go's limit", ms.Name)
				for _, kv := range []struct {
					what string
					size uint32
					c    btf.Type
					goT  reflect.Type
				}{{"key", ms.KeySize, ms.Key, want.key}, {"value", ms.ValueSize, ms.Value, want.value}} {
					if kv.goT == nil {
						require.Zero(t, kv.size, "map %s %s", ms.Name, kv.what)
						continue
					}
					require.Equal(t, uint32(kv.goT.Size()), kv.size, "map %s %s size against Go %s", ms.Name, kv.what, kv.goT)
					if s, ok := btf.UnderlyingType(kv.c).(*btf.Struct); ok {
						require.Empty(t, compareStruct(s, kv.goT, "", ms.Name+" "+kv.what))
					}
				}
			})
		}
		require.Len(t, pinnedMaps(spec), len(layouts), "a map this test knows is gone from the object")
	})

	t.Run("limits", func(t *testing.T) {
		var limits *btf.Enum
		require.NoError(t, spec.Types.TypeByName("ovsbpf_limit", &limits))
		var sizes *btf.Enum
		require.NoError(t, spec.Types.TypeByName("ovsbpf_table_size", &sizes))
		val := func(e *btf.Enum, name string) uint64 {
			for _, v := range e.Values {
				if v.Name == name {
					return v.Value
				}
			}
			t.Fatalf("enum %s has no %s", e.Name, name)
			return 0
		}
		actions := cStruct(t, spec, "ovsbpf_actions")
		upcall := cStruct(t, spec, "ovsbpf_upcall")
		for _, tc := range []struct {
			name    string
			c, goes uint64
		}{
			{"OVSBPF_MAX_MASKS", val(limits, "OVSBPF_MAX_MASKS"), uint64(MaxMasks)},
			{"OVSBPF_MAX_FLOWS", val(limits, "OVSBPF_MAX_FLOWS"), uint64(DefaultMaxFlows)},
			{"OVSBPF_MAX_PORTS", val(limits, "OVSBPF_MAX_PORTS"), uint64(MaxPorts)},
			{"OVSBPF_MAX_ACTIONS", val(limits, "OVSBPF_MAX_ACTIONS"), uint64(BlockActions)},
			{"ovsbpf_actions.a[]", uint64(arrayLen(t, actions, "a")), uint64(BlockActions)},
			{"OVSBPF_MAX_ACTION_BLOCKS", val(limits, "OVSBPF_MAX_ACTION_BLOCKS"), uint64(MaxActionBlocks)},
			{"OVSBPF_MAX_PASSES", val(limits, "OVSBPF_MAX_PASSES"), uint64(MaxPasses)},
			{"OVSBPF_UPCALL_MAX_FRAME", val(limits, "OVSBPF_UPCALL_MAX_FRAME"), uint64(MaxUpcallFrame)},
			{"ovsbpf_upcall.frame[]", uint64(arrayLen(t, upcall, "frame")), uint64(MaxUpcallFrame)},
			{"OVSBPF_EXEC_SLOTS", val(sizes, "OVSBPF_EXEC_SLOTS"), uint64(MaxExecutors)},
			{"OVSBPF_IFINDEX_SLOTS", val(sizes, "OVSBPF_IFINDEX_SLOTS"), uint64(ifindexSlots)},
			{"OVSBPF_UPCALL_RING_BYTES", val(sizes, "OVSBPF_UPCALL_RING_BYTES"), uint64(DefaultUpcallRingBytes)},
			{"sizeof(struct ovsbpf_narrow)", uint64(cStruct(t, spec, "ovsbpf_narrow").Size), uint64(KeySize)},
		} {
			require.Equal(t, tc.c, tc.goes, "%s: the object says %d, Go %d", tc.name, tc.c, tc.goes)
		}
	})

	t.Run("flags", func(t *testing.T) {
		for _, tc := range []struct {
			enum, name string
			goes       uint64
		}{
			{"ovsbpf_vlan", "OVSBPF_VLAN_PRESENT", uint64(VLANPresent)},
			{"ovsbpf_frag", "OVSBPF_FRAG_ANY", uint64(FragAny)},
			{"ovsbpf_frag", "OVSBPF_FRAG_LATER", uint64(FragLater)},
			{"ovsbpf_port_flag", "OVSBPF_PORT_PEER", uint64(bpf.DatapathOvsbpfPortFlagOVSBPF_PORT_PEER)},
		} {
			var e *btf.Enum
			require.NoError(t, spec.Types.TypeByName(tc.enum, &e))
			found := false
			for _, v := range e.Values {
				if v.Name == tc.name {
					found = true
					require.Equal(t, v.Value, tc.goes, "%s", tc.name)
				}
			}
			require.True(t, found, "enum %s has no %s", tc.enum, tc.name)
		}
	})

	// The parser copies ARP's 6-byte hardware addresses over runs of
	// narrow-key fields ARP lacks (bpf/include/parse.h), and Go reads
	// them back from the first field's offset (key.go, upcall/keyconv.go):
	// each run must stay six contiguous bytes.
	t.Run("arp overlays", func(t *testing.T) {
		narrow := cStruct(t, spec, "ovsbpf_narrow")
		for _, run := range [][]string{{"tp_src", "tp_dst", "tcp_flags"}, {"ct_zone", "ct_mark"}} {
			start := memberOffset(t, narrow, run[0])
			end := start
			for _, name := range run {
				require.Equal(t, end, memberOffset(t, narrow, name), "%s must follow on from %s", name, run[0])
				end += memberSize(t, narrow, name)
			}
			require.Equal(t, 6, end-start, "%v holds a MAC address", run)
		}
		require.Equal(t, offARPSHA, memberOffset(t, narrow, "tp_src"))
		require.Equal(t, offARPTHA, memberOffset(t, narrow, "ct_zone"))
	})
}

// The pin directory's name follows the layout and is one bpffs takes.
func TestLayoutVersionNamesTheLayout(t *testing.T) {
	spec := loadSpec(t)
	v := layoutVersion(spec)
	got, err := LayoutVersion()
	require.NoError(t, err)
	require.Equal(t, v, got)
	require.Regexp(t, `^layout-[0-9a-f]{12}$`, v, "no dots: bpffs refuses them")
	require.Equal(t, v, layoutVersion(loadSpec(t)), "the same object, the same name")

	// A field moved, a map resized, a value type changed: each renames.
	mutations := map[string]func(*ebpf.CollectionSpec){
		"two members of the flow key swapped": func(s *ebpf.CollectionSpec) {
			k := btf.UnderlyingType(s.Maps[bpf.DatapathMapFlows].Key).(*btf.Struct)
			k.Members[0].Name, k.Members[1].Name = k.Members[1].Name, k.Members[0].Name
		},
		"an array in a value grown": func(s *ebpf.CollectionSpec) {
			v := btf.UnderlyingType(s.Maps[bpf.DatapathMapFlowActions].Value).(*btf.Struct)
			for _, m := range v.Members {
				if a, ok := m.Type.(*btf.Array); ok {
					a.Nelems++
				}
			}
		},
		"the flow table resized": func(s *ebpf.CollectionSpec) { s.Maps[bpf.DatapathMapFlows].MaxEntries *= 2 },
	}
	for name, mutate := range mutations {
		s := loadSpec(t)
		mutate(s)
		require.NotEqual(t, v, layoutVersion(s), name)
	}
}

// compareStruct lists how goType differs from the C struct s: a Go field
// with no C member of its name, at another offset or of another size, a
// C member Go lacks, or another size. upTo makes goType a prefix of s
// ending with that member.
func compareStruct(s *btf.Struct, goType reflect.Type, upTo, path string) []string {
	var problems []string
	byName := map[string]btf.Member{}
	for _, m := range s.Members {
		byName[normalize(m.Name)] = m
	}
	seen := map[string]bool{}
	for i := range goType.NumField() {
		f := goType.Field(i)
		if f.Name == "_" {
			continue // padding and structs.HostLayout: the sizes check them
		}
		m, ok := byName[normalize(f.Name)]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.%s: no such member in struct %s", path, f.Name, s.Name))
			continue
		}
		seen[m.Name] = true
		if off := int(m.Offset.Bytes()); off != int(f.Offset) || m.BitfieldSize != 0 {
			problems = append(problems, fmt.Sprintf("%s.%s: Go offset %d, C offset %d (bitfield %d)", path, f.Name, f.Offset, off, m.BitfieldSize))
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil || size != int(f.Type.Size()) {
			problems = append(problems, fmt.Sprintf("%s.%s: Go size %d, C size %d (%v)", path, f.Name, f.Type.Size(), size, err))
			continue
		}
		problems = append(problems, compareNested(m.Type, f.Type, path+"."+f.Name)...)
	}
	if upTo != "" {
		m, ok := byName[normalize(upTo)]
		if !ok {
			return append(problems, fmt.Sprintf("%s: no member %s to end at", path, upTo))
		}
		size, _ := btf.Sizeof(m.Type)
		if end := int(m.Offset.Bytes()) + size; end != int(goType.Size()) {
			problems = append(problems, fmt.Sprintf("%s: Go size %d, C %s ends at %d", path, goType.Size(), upTo, end))
		}
		return problems
	}
	for _, m := range s.Members {
		if !seen[m.Name] {
			problems = append(problems, fmt.Sprintf("%s: C member %s has no Go field", path, m.Name))
		}
	}
	if int(s.Size) != int(goType.Size()) {
		problems = append(problems, fmt.Sprintf("%s: Go size %d, C size %d", path, goType.Size(), s.Size))
	}
	return problems
}

// compareNested descends into struct members and arrays of structs.
func compareNested(c btf.Type, goType reflect.Type, path string) []string {
	c = btf.UnderlyingType(c)
	switch goType.Kind() {
	case reflect.Struct:
		s, ok := c.(*btf.Struct)
		if !ok {
			return []string{fmt.Sprintf("%s: Go struct, C %s", path, c)}
		}
		return compareStruct(s, goType, "", path)
	case reflect.Array:
		a, ok := c.(*btf.Array)
		if !ok {
			return []string{fmt.Sprintf("%s: Go array, C %s", path, c)}
		}
		if int(a.Nelems) != goType.Len() {
			return []string{fmt.Sprintf("%s: Go %d elements, C %d", path, goType.Len(), a.Nelems)}
		}
		return compareNested(a.Type, goType.Elem(), path+"[]")
	}
	return nil
}

// normalize matches bpf2go's and hand-written Go names to C's:
// recirc_id and RecircId, tc_index and TCIndex.
func normalize(name string) string { return strings.ToLower(strings.ReplaceAll(name, "_", "")) }

func member(t *testing.T, s *btf.Struct, name string) btf.Member {
	t.Helper()
	for _, m := range s.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("struct %s has no member %s", s.Name, name)
	return btf.Member{}
}

func memberOffset(t *testing.T, s *btf.Struct, name string) int {
	return int(member(t, s, name).Offset.Bytes())
}

func memberSize(t *testing.T, s *btf.Struct, name string) int {
	n, err := btf.Sizeof(member(t, s, name).Type)
	require.NoError(t, err)
	return n
}

func arrayLen(t *testing.T, s *btf.Struct, name string) uint32 {
	a, ok := btf.UnderlyingType(member(t, s, name).Type).(*btf.Array)
	require.True(t, ok, "%s.%s is an array", s.Name, name)
	return a.Nelems
}
