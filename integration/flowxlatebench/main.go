// Command flowxlatebench measures how long the OVN front end of flowxlate
// takes to parse and compile a Southbound database's logical flows into the
// pipeline, on one core, and the process's peak memory while it does.
//
// It works in two steps so that neither reading the database nor the OVN
// daemons compete with the measurement:
//
//	flowxlatebench -db REMOTE -save FILE   # read the Southbound, print its size, save it
//	flowxlatebench -snapshot FILE          # measure, three times, each in a fresh process
//
// Output is "name value" lines; integration/bench/flowxlate.sh drives it.
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

// measureRuns is how many times the translation is measured: on a shared
// machine one run can be slowed by a neighbour, so the median is reported.
const measureRuns = 3

func main() {
	db := flag.String("db", "", "Southbound remote to read")
	save := flag.String("save", "", "with -db: save the snapshot to this file")
	snapshot := flag.String("snapshot", "", "measure the translation of this saved snapshot")
	once := flag.Bool("once", false, "with -snapshot: measure once, in this process (the child mode)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the translation to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile after the translation to this file")
	flag.Parse()
	var err error
	switch {
	case *db != "" && *save != "":
		err = read(*db, *save)
	case *snapshot != "" && *once:
		err = measure(*snapshot, *cpuProfile, *memProfile)
	case *snapshot != "":
		err = measureRepeatedly(*snapshot, *cpuProfile)
	default:
		err = fmt.Errorf("use -db REMOTE -save FILE, or -snapshot FILE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowxlatebench:", err)
		os.Exit(1)
	}
}

// read reads the Southbound, prints its size and saves it.
func read(remote, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sb, err := ovsdb.ReadSouthbound(ctx, remote, slog.Default())
	if err != nil {
		return err
	}
	fmt.Printf("lflows %d\n", len(sb.LogicalFlows))
	fmt.Printf("datapaths %d\n", len(sb.Datapaths))
	fmt.Printf("port_bindings %d\n", len(sb.Ports))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := gob.NewEncoder(w).Encode(sb); err != nil {
		f.Close()
		return fmt.Errorf("writing snapshot %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// measureRepeatedly runs the measurement in fresh processes with
// GOMAXPROCS=1 and reports the median time and the largest peak.
func measureRepeatedly(path, cpuProfile string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var runs []map[string]string
	times := make([]float64, 0, measureRuns)
	peak := 0.0
	for i := 0; i < measureRuns; i++ {
		cmd := exec.Command(self, "-snapshot", path, "-once", "-cpuprofile", cpuProfile)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("measuring: %w", err)
		}
		r := parseFigures(string(out))
		runs = append(runs, r)
		t, _ := strconv.ParseFloat(r["translate_s"], 64)
		p, _ := strconv.ParseFloat(r["translate_peak_mb"], 64)
		times, peak = append(times, t), max(peak, p)
		fmt.Printf("translate_s_run%d %s\n", i+1, r["translate_s"])
	}
	first := runs[0]
	for _, k := range []string{"gomaxprocs", "translate_rules", "translate_skipped", "snapshot_rss_mb", "pipeline_heap_mb"} {
		fmt.Printf("%s %s\n", k, first[k])
	}
	sort.Float64s(times)
	median := times[len(times)/2]
	lflows, _ := strconv.Atoi(first["lflows"])
	fmt.Printf("translate_s %.3f\n", median)
	fmt.Printf("translate_us_per_lflow %.2f\n", median*1e6/float64(max(1, lflows)))
	fmt.Printf("translate_peak_mb %.1f\n", peak)
	return nil
}

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
		return fmt.Errorf("reading snapshot %s: %w", path, err)
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
	fmt.Printf("lflows %d\n", st.LogicalFlows)
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
