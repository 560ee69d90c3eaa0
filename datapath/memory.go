package datapath

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
)

// MapMemory is the kernel memory of each of the datapath's maps, by map
// name, in bytes, as the kernel accounts it (the map's memlock).
type MapMemory map[string]uint64

// Total is the memory of all the maps.
func (m MapMemory) Total() uint64 {
	var t uint64
	for _, v := range m {
		t += v
	}
	return t
}

// String writes the total and the largest maps, as dpif/show prints them.
func (m MapMemory) String() string {
	names := slices.Collect(func(yield func(string) bool) {
		for n := range m {
			if !yield(n) {
				return
			}
		}
	})
	slices.SortFunc(names, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%.1f MiB", mib(m.Total()))
	for i, n := range names {
		if i == 6 {
			b.WriteString(", ...")
			break
		}
		fmt.Fprintf(&b, ", %s %.1f MiB", n, mib(m[n]))
	}
	return b.String()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// MapMemory reads the kernel memory of every map of the datapath.
func (d *Datapath) MapMemory() (MapMemory, error) {
	out := MapMemory{}
	v := reflect.ValueOf(&d.objs.DatapathMaps).Elem()
	for i := 0; i < v.NumField(); i++ {
		m, ok := v.Field(i).Interface().(*ebpf.Map)
		if !ok || m == nil {
			continue
		}
		name := v.Type().Field(i).Tag.Get("ebpf")
		info, err := m.Info()
		if err != nil {
			return out, fmt.Errorf("reading map %s: %w", name, err)
		}
		mem, ok := info.Memlock()
		if !ok {
			return out, fmt.Errorf("map %s: the kernel reports no memory", name)
		}
		out[name] = mem
	}
	return out, nil
}

// MaxFlows is the most megaflows the datapath holds (Config.MaxFlows).
func (d *Datapath) MaxFlows() int { return int(d.flows.ids.limit) - 1 }

// ActionBlocks is the number of blocks megaflows' long action lists
// (floods) share, and how many of them are taken.
func (d *Datapath) ActionBlocks() (total, used int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, bs := range d.flows.blocksOf {
		used += len(bs)
	}
	return int(d.pool), used
}
