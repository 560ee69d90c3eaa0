// Command flowxlatebench measures how long the OVN front end of flowxlate
// takes to parse and compile a Southbound database's logical flows into the
// pipeline, on one core, and the process's peak memory while it does.
//
// It reads the Southbound (not timed), prints its size, then runs the
// measurement in a child process with GOMAXPROCS=1 that loads the snapshot
// from a file, so that reading the database does not count. Output is
// "name value" lines; integration/bench/flowxlate.sh drives it.
package main

import (
	"bufio"
	"context"
	"encoding/gob"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb"
)

func main() {
	db := flag.String("db", "", "Southbound remote to read")
	snapshot := flag.String("measure", "", "internal: measure translation of this snapshot file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the translation to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile after the translation to this file")
	keep := flag.String("keep", "", "also keep the snapshot in this file")
	flag.Parse()
	var err error
	if *snapshot != "" {
		err = measure(*snapshot, *cpuProfile, *memProfile)
	} else {
		err = parent(*db, *keep, *cpuProfile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowxlatebench:", err)
		os.Exit(1)
	}
}

func parent(remote, keep, cpuProfile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sb, err := ovsdb.ReadSouthbound(ctx, remote, slog.Default())
	if err != nil {
		return err
	}
	fmt.Printf("lflows %d\n", len(sb.LogicalFlows))
	fmt.Printf("datapaths %d\n", len(sb.Datapaths))
	fmt.Printf("port_bindings %d\n", len(sb.Ports))

	f, err := os.CreateTemp("", "flowxlatebench-*.gob")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	if err := gob.NewEncoder(w).Encode(sb); err != nil {
		return fmt.Errorf("writing snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if keep != "" {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Run the measurement three times, each in a fresh process, and report
	// the median time and the largest peak: one run on a shared machine
	// can be slowed by a neighbour.
	var runs []map[string]string
	for i := 0; i < measureRuns; i++ {
		cmd := exec.Command(self, "-measure", f.Name(), "-cpuprofile", cpuProfile)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("measuring: %w", err)
		}
		runs = append(runs, parseFigures(string(out)))
	}
	times := make([]float64, len(runs))
	peak := 0.0
	for i, r := range runs {
		times[i], _ = strconv.ParseFloat(r["translate_s"], 64)
		p, _ := strconv.ParseFloat(r["translate_peak_mb"], 64)
		peak = max(peak, p)
		fmt.Printf("translate_s_run%d %s\n", i+1, r["translate_s"])
	}
	sort.Float64s(times)
	median := runs[0]
	for _, r := range runs {
		if r["translate_s"] == strconv.FormatFloat(times[len(times)/2], 'f', 3, 64) {
			median = r
		}
	}
	for _, k := range []string{"gomaxprocs", "translate_rules", "translate_skipped", "snapshot_rss_mb", "pipeline_heap_mb"} {
		fmt.Printf("%s %s\n", k, median[k])
	}
	fmt.Printf("translate_s %.3f\n", times[len(times)/2])
	fmt.Printf("translate_us_per_lflow %.2f\n", times[len(times)/2]*1e6/float64(max(1, len(sb.LogicalFlows))))
	fmt.Printf("translate_peak_mb %.1f\n", peak)
	return nil
}

// measureRuns is how many times the translation is measured.
const measureRuns = 3

// parseFigures reads "name value" lines.
func parseFigures(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			m[k] = v
		}
	}
	return m
}

// measure loads a snapshot, then times Translator.Load on it. The peak
// resident set is reset just before, so translate_peak_mb is the largest
// the process grew while translating: the snapshot plus the pipeline.
func measure(path, cpuProfile, memProfile string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	sb := new(ovn.Southbound)
	err = gob.NewDecoder(bufio.NewReader(f)).Decode(sb)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading snapshot: %w", err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting peak RSS: %w", err)
	}
	base, err := statusKB("VmRSS")
	if err != nil {
		return err
	}

	tr := ovn.NewTranslator(ovn.Options{})
	if cpuProfile != "" {
		pf, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := tr.Load(sb); err != nil {
		return err
	}
	elapsed := time.Since(start)
	pprof.StopCPUProfile()

	peak, err := statusKB("VmHWM")
	if err != nil {
		return err
	}
	st := tr.Stats()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Printf("gomaxprocs %d\n", runtime.GOMAXPROCS(0))
	fmt.Printf("translate_s %.3f\n", elapsed.Seconds())
	fmt.Printf("translate_peak_mb %.1f\n", float64(peak)/1024)
	fmt.Printf("snapshot_rss_mb %.1f\n", float64(base)/1024)
	fmt.Printf("pipeline_heap_mb %.1f\n", float64(ms.HeapAlloc)/(1<<20))
	fmt.Printf("translate_rules %d\n", st.Rules)
	fmt.Printf("translate_skipped %d\n", st.Skipped)
	if memProfile != "" {
		mf, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		defer mf.Close()
		if err := pprof.WriteHeapProfile(mf); err != nil {
			return err
		}
	}
	runtime.KeepAlive(tr)
	return nil
}

// statusKB reads a "Name: N kB" line of /proc/self/status.
func statusKB(name string) (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", name)
}
