package datapath

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// layoutPrefix starts every layout directory's name under a pin path.
const layoutPrefix = "layout-"

// LayoutVersion names the layout of the pinned maps of the embedded
// datapath object: "layout-" and 12 hex digits of a SHA-256 over every
// pinned map's type, sizes, flags and the BTF of its key and value. It is
// the last element of the pin directory, so a daemon whose maps differ in
// layout from an older daemon's, even where the kernel would not notice
// (two fields of a value swapped), never reuses that daemon's maps, and a
// change to the C renames the directory by itself. bpffs refuses dots in
// names: the version has none.
func LayoutVersion() (string, error) {
	spec, err := bpf.LoadDatapath()
	if err != nil {
		return "", fmt.Errorf("reading the embedded datapath object: %w", err)
	}
	return layoutVersion(spec), nil
}

// layoutVersion hashes the pinned maps of spec as the object defines them:
// call it before changing any map's size for this load (the upcall ring's
// size is configurable and checked apart, see Open).
func layoutVersion(spec *ebpf.CollectionSpec) string {
	h := sha256.New()
	for _, m := range pinnedMaps(spec) {
		fmt.Fprintf(h, "%s type=%s key=%d value=%d max=%d flags=%#x\n",
			m.Name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, m.Flags)
		io.WriteString(h, " key "+describeBTF(m.Key)+"\n")
		io.WriteString(h, " value "+describeBTF(m.Value)+"\n")
	}
	return layoutPrefix + hex.EncodeToString(h.Sum(nil))[:12]
}

// pinnedMaps returns the maps Open pins, by name: all but the global
// variables' sections.
func pinnedMaps(spec *ebpf.CollectionSpec) []*ebpf.MapSpec {
	var out []*ebpf.MapSpec
	for name, m := range spec.Maps {
		if name == "" || strings.HasPrefix(name, ".") {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// describeBTF writes a map key or value type with everything that decides
// its layout and meaning: struct, union and member names, bit offsets,
// sizes, integer encodings, array lengths and enum values. Typedef and
// qualifier names are left out: they change nothing in memory.
func describeBTF(t btf.Type) string {
	var b strings.Builder
	writeBTF(&b, t)
	return b.String()
}

func writeBTF(b *strings.Builder, t btf.Type) {
	switch t := t.(type) {
	case nil:
		b.WriteString("none")
	case *btf.Int:
		fmt.Fprintf(b, "int(%d,%s)", t.Size, t.Encoding)
	case *btf.Array:
		fmt.Fprintf(b, "[%d]", t.Nelems)
		writeBTF(b, t.Type)
	case *btf.Struct:
		writeMembers(b, "struct", t.Name, t.Size, t.Members)
	case *btf.Union:
		writeMembers(b, "union", t.Name, t.Size, t.Members)
	case *btf.Enum:
		fmt.Fprintf(b, "enum %s(%d,signed=%t){", t.Name, t.Size, t.Signed)
		for _, v := range t.Values {
			fmt.Fprintf(b, "%s=%d;", v.Name, v.Value)
		}
		b.WriteString("}")
	case *btf.Typedef:
		writeBTF(b, t.Type)
	case *btf.Volatile:
		writeBTF(b, t.Type)
	case *btf.Const:
		writeBTF(b, t.Type)
	case *btf.Restrict:
		writeBTF(b, t.Type)
	case *btf.Pointer:
		// A pointer's target cannot change the pointer's layout; naming
		// it is enough, and keeps a self-referring type finite.
		fmt.Fprintf(b, "ptr(%s)", t.Target.TypeName())
	default:
		fmt.Fprintf(b, "%T(%s)", t, t.TypeName())
	}
}

func writeMembers(b *strings.Builder, kind, name string, size uint32, ms []btf.Member) {
	fmt.Fprintf(b, "%s %s(%d){", kind, name, size)
	for _, m := range ms {
		fmt.Fprintf(b, "%s@%d:%d ", m.Name, m.Offset, m.BitfieldSize)
		writeBTF(b, m.Type)
		b.WriteString(";")
	}
	b.WriteString("}")
}
