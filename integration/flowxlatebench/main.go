// Command flowxlatebench measures how long the OVN front end of flowxlate
// takes to parse and compile a Southbound database's logical flows into the
// pipeline, on one core, and the peak memory of a process that does it.
//
//	flowxlatebench -db REMOTE                       # read, then measure
//	flowxlatebench -db REMOTE -save FILE -measure=false
//	flowxlatebench -snapshot FILE                   # measure a saved snapshot
//
// Reading the database (ovsdb.ReadSouthbound) is not measured. The snapshot
// is written to a JSON file, and each measurement runs in a fresh child
// process with GOMAXPROCS=1 that loads it, collects garbage, and times
// ovn.Translator.Load. The child's peak resident set (VmHWM, the whole
// process since it started: conservative) is the memory figure. The time is
// the median of -runs children, since one run on a shared machine can be
// slowed by a neighbour; the memory is the largest. Two times are given:
// translate_s, the wall time of Load, and translate_cpu_s, the CPU time
// (user and system, every thread: the garbage collector's too) the child
// used meanwhile, which is what a peer's CPU seconds compare with. With
// GOMAXPROCS=1 the two agree on an idle core; a busy machine makes the
// wall time longer, not the CPU time.
//
// Output is "name value" lines on stdout, progress on stderr;
// integration/bench/flowxlate.sh drives it for make bench-flowxlate.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb"
)

// childFlag runs the program as a measuring child.
const childFlag = "child"

type options struct {
	db, snapshot, save string
	measure            bool
	runs               int
	cpuProfile         string
	memProfile         string
	child              string
	readTimeout        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.db, "db", "", "Southbound remote to read (unix:PATH or tcp:HOST:PORT)")
	flag.StringVar(&o.snapshot, "snapshot", "", "measure this saved snapshot instead of reading a database")
	flag.StringVar(&o.save, "save", "", "with -db: keep the snapshot in this file")
	flag.BoolVar(&o.measure, "measure", true, "measure the translation")
	flag.IntVar(&o.runs, "runs", 3, "measure in this many child processes")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the translation (first run) to this file")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile after the translation (first run) to this file")
	flag.StringVar(&o.child, childFlag, "", "internal: measure the snapshot in this file, in this process")
	flag.DurationVar(&o.readTimeout, "timeout", 10*time.Minute, "with -db: give up reading after this long")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(o, log, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "flowxlatebench:", err)
		os.Exit(1)
	}
}

func run(o options, log *slog.Logger, out io.Writer) error {
	if o.child != "" {
		return measureHere(o, log, out)
	}
	switch {
	case (o.db == "") == (o.snapshot == ""):
		return errors.New("want one of -db REMOTE and -snapshot FILE")
	case o.save != "" && o.db == "":
		return errors.New("-save goes with -db")
	case o.runs < 1:
		return errors.New("-runs must be at least 1")
	}
	path := o.snapshot
	if o.db != "" {
		path = o.save
		if path == "" {
			tmp, err := os.MkdirTemp("", "flowxlatebench")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			path = filepath.Join(tmp, "sb.json")
		}
		if err := read(o, log, out, path); err != nil {
			return err
		}
	}
	if !o.measure {
		return nil
	}
	return measure(o, out, path)
}

// read reads the Southbound, prints its size and saves it to path.
func read(o options, log *slog.Logger, out io.Writer, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.readTimeout)
	defer cancel()
	start := time.Now()
	sb, err := ovsdb.ReadSouthbound(ctx, o.db, log)
	if err != nil {
		return err
	}
	log.Info("read the southbound", "seconds", time.Since(start).Seconds())
	fmt.Fprintf(out, "lflows %d\n", len(sb.LogicalFlows))
	fmt.Fprintf(out, "datapaths %d\n", len(sb.Datapaths))
	fmt.Fprintf(out, "port_bindings %d\n", len(sb.Ports))
	return save(sb, path)
}

func save(sb *ovn.Southbound, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := json.NewEncoder(w).Encode(sb); err != nil {
		f.Close()
		return fmt.Errorf("writing snapshot %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing snapshot %s: %w", path, err)
	}
	return f.Close()
}

func load(path string) (*ovn.Southbound, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sb := new(ovn.Southbound)
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(sb); err != nil {
		return nil, fmt.Errorf("reading snapshot %s: %w", path, err)
	}
	return sb, nil
}

// measure runs the measurement in o.runs fresh children with GOMAXPROCS=1
// and prints each run's time, then the figures.
func measure(o options, out io.Writer, path string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var first map[string]string
	times := make([]float64, 0, o.runs)
	cpus := make([]float64, 0, o.runs)
	peak := 0.0
	for i := range o.runs {
		args := []string{"-" + childFlag, path}
		if i == 0 {
			args = append(args, "-cpuprofile", o.cpuProfile, "-memprofile", o.memProfile)
		}
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("measuring in a child process: %w", err)
		}
		r := parseFigures(string(b))
		t, err1 := strconv.ParseFloat(r["translate_s"], 64)
		p, err2 := strconv.ParseFloat(r["translate_peak_mb"], 64)
		c, err3 := strconv.ParseFloat(r["translate_cpu_s"], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("reading the child's figures %q: %w", b, err)
		}
		if first == nil {
			first = r
		}
		times, cpus, peak = append(times, t), append(cpus, c), max(peak, p)
		fmt.Fprintf(out, "translate_s_run%d %.3f\n", i+1, t)
		fmt.Fprintf(out, "translate_cpu_s_run%d %.3f\n", i+1, c)
	}
	for _, k := range []string{"translate_lflows", "gomaxprocs", "translate_rules", "translate_skipped", "snapshot_rss_mb", "pipeline_heap_mb"} {
		fmt.Fprintf(out, "%s %s\n", k, first[k])
	}
	slices.Sort(times)
	median := times[len(times)/2]
	lflows, _ := strconv.Atoi(first["translate_lflows"])
	slices.Sort(cpus)
	fmt.Fprintf(out, "translate_s %.3f\n", median)
	fmt.Fprintf(out, "translate_cpu_s %.3f\n", cpus[len(cpus)/2])
	fmt.Fprintf(out, "translate_us_per_lflow %.2f\n", median*1e6/float64(max(1, lflows)))
	fmt.Fprintf(out, "translate_peak_mb %.1f\n", peak)
	return nil
}

// parseFigures reads "name value" lines.
func parseFigures(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			m[k] = v
		}
	}
	return m
}

// measureHere is the child: it loads the snapshot, collects garbage, and
// times Translator.Load on one core.
func measureHere(o options, log *slog.Logger, out io.Writer) error {
	if n := runtime.GOMAXPROCS(0); n != 1 {
		return fmt.Errorf("the measurement runs with GOMAXPROCS=1, not %d", n)
	}
	sb, err := load(o.child)
	if err != nil {
		return err
	}
	debug.FreeOSMemory() // collects garbage, and returns it, so that RSS is what lives
	base, err := statusKB("VmRSS")
	if err != nil {
		return err
	}
	tr := ovn.NewTranslator(ovn.Options{Logger: log})
	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
	}
	cpu0, err := cpuTime()
	if err != nil {
		return err
	}
	start := time.Now()
	err = tr.Load(sb)
	elapsed := time.Since(start)
	cpu1, cerr := cpuTime()
	pprof.StopCPUProfile()
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("loading the snapshot into the translator: %w", err)
	}
	peak, err := statusKB("VmHWM")
	if err != nil {
		return err
	}
	st := tr.Stats()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(out, "translate_lflows %d\n", st.LogicalFlows)
	fmt.Fprintf(out, "gomaxprocs %d\n", runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "translate_s %.3f\n", elapsed.Seconds())
	fmt.Fprintf(out, "translate_cpu_s %.3f\n", (cpu1 - cpu0).Seconds())
	fmt.Fprintf(out, "translate_peak_mb %.1f\n", float64(peak)/1024)
	fmt.Fprintf(out, "snapshot_rss_mb %.1f\n", float64(base)/1024)
	fmt.Fprintf(out, "pipeline_heap_mb %.1f\n", float64(ms.HeapAlloc)/(1<<20))
	fmt.Fprintf(out, "translate_rules %d\n", st.Rules)
	fmt.Fprintf(out, "translate_skipped %d\n", st.Skipped)
	if o.memProfile != "" {
		mf, err := os.Create(o.memProfile)
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

// cpuTime is the user and system CPU time this process (every thread) has
// used so far.
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("reading the CPU time used: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
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
