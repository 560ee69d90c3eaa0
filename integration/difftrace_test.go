// Package integration holds ovsbpf's tests against real OVN daemons. The
// differential suite (TestDiffTrace) builds each topology of
// topologies_test.go with a real ovn-northd, then traces every microflow
// with ovn-trace --minimal and with ovsbpfctl trace --minimal on the same
// Southbound database and requires the two to say the same thing.
//
// Knobs, all environment variables:
//
//	OVSBPF_DIFF_SELF=1      trace with ovn-trace on both sides: checks the
//	                        harness, the normaliser and the microflows
//	                        without ovsbpfctl (and that ovn-trace is
//	                        deterministic on them)
//	OVSBPF_DIFF_KEEP=DIR    write DIR/<topology>/{nb.db,sb.db,cases.txt}
//	                        for working on ovsbpfctl without northd
//	OVSBPF_WRITE_LFLOWS=1   TestLflowCorpus rewrites the parsers' seed corpus
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

const (
	envSelf = "OVSBPF_DIFF_SELF"
	envKeep = "OVSBPF_DIFF_KEEP"

	// minCompared is the least number of microflows the suite compares
	// when every topology runs.
	minCompared = 400
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeBuiltBinaries()
	os.Exit(code)
}

// --- the implementation under test -----------------------------------------

// tracer is what the suite compares with ovn-trace.
type tracer struct {
	name string
	self bool // the implementation is ovn-trace itself
	// trace runs one trace; args are ovn-trace's options, datapath and
	// microflow. It returns standard output; err carries standard error.
	trace func(sb string, args []string) (string, error)
	// check runs the "every logical flow is supported" check.
	check func(sb string) (string, error)
}

// underTest returns ovsbpfctl, built once per test binary run, or with
// OVSBPF_DIFF_SELF=1 ovn-trace itself.
func underTest(t *testing.T) tracer {
	t.Helper()
	if os.Getenv(envSelf) == "1" {
		trace := ovntest.Binary(t, "ovn-trace")
		sbctl := ovntest.Binary(t, "ovn-sbctl")
		return tracer{
			name: "ovn-trace (" + envSelf + "=1)",
			self: true,
			trace: func(sb string, args []string) (string, error) {
				return runProgram(trace, append([]string{"--db", sb}, args...)...)
			},
			// ovn-trace has no "check"; that the SB lists cleanly at least
			// exercises the plumbing.
			check: func(sb string) (string, error) {
				_, err := runProgram(sbctl, "--db="+sb, "--timeout=20", "lflow-list")
				return "(self mode: ovn-sbctl lflow-list)", err
			},
		}
	}
	bin := ovsbpfctlBinary(t)
	return tracer{
		name: "ovsbpfctl",
		trace: func(sb string, args []string) (string, error) {
			return runProgram(bin, append([]string{"trace", "--db", sb}, args...)...)
		},
		check: func(sb string) (string, error) {
			return runProgram(bin, "lflow", "check", "--db", sb)
		},
	}
}

var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// ovsbpfctlBinary builds cmd/ovsbpfctl once per test binary run and
// returns its path; a build failure fails every test that needs it.
func ovsbpfctlBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			built.err = err
			return
		}
		built.dir, err = os.MkdirTemp("", "ovsbpf-difftrace-")
		if err != nil {
			built.err = err
			return
		}
		built.bin = filepath.Join(built.dir, "ovsbpfctl")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(goBin, "build", "-o", built.bin, "./cmd/ovsbpfctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build -o %s ./cmd/ovsbpfctl (in %s): %w\n%s", built.bin, root, err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("building ovsbpfctl: %v", built.err)
	}
	return built.bin
}

func removeBuiltBinaries() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// repoRoot is the directory of go.mod: from `go env GOMOD`, else two
// levels above this file.
func repoRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if p := strings.TrimSpace(string(out)); p != "" && p != os.DevNull {
			return filepath.Dir(p), nil
		}
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot find the repository root")
	}
	return filepath.Dir(filepath.Dir(file)), nil
}

// keepHint tells where the databases of a failed case can be found again.
func keepHint(keep string) string {
	if keep != "" {
		return "\n           (the topology's sb.db and cases.txt are in " + keep + ")"
	}
	return "\n           (the SB is removed after the test; rerun with " + envKeep + "=DIR to keep it)"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runProgram runs a program for at most a minute and returns its standard
// output; the error carries its standard error.
func runProgram(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\nstderr: %s", filepath.Base(name), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// --- cases -----------------------------------------------------------------

// traceCase is one packet to trace through a topology.
type traceCase struct {
	label string   // what the packet is, for people
	dp    string   // logical datapath it enters
	flow  string   // microflow, in the OVN match language
	ct    []string // --ct values, in order
	lbDst string   // --lb-dst, for packets to a load balancer VIP
}

// args returns ovn-trace's arguments after --db: options, format,
// datapath, microflow.
func (c traceCase) args(format string) []string {
	var a []string
	for _, ct := range c.ct {
		a = append(a, "--ct", ct)
	}
	if c.lbDst != "" {
		a = append(a, "--lb-dst", c.lbDst)
	}
	return append(a, format, c.dp, c.flow)
}

func (c traceCase) options() string {
	var a []string
	for _, ct := range c.ct {
		a = append(a, "--ct", ct)
	}
	if c.lbDst != "" {
		a = append(a, "--lb-dst", c.lbDst)
	}
	return strings.Join(a, " ")
}

// commandLine is the case as a pasteable ovn-trace command.
func (c traceCase) commandLine(sb, format string) string {
	q := []string{"ovn-trace", "--db", ovntest.ShellQuote(sb)}
	for _, a := range c.args(format) {
		q = append(q, ovntest.ShellQuote(a))
	}
	return strings.Join(q, " ")
}

// topology is an NB configuration and the packets to trace through it.
type topology struct {
	name  string
	build func(e *ovntest.Env)
	cases []traceCase
	// ovnTraceAborts are packets on which this ovn-trace crashes, so there
	// is nothing to compare with: the suite checks that ovn-trace still
	// crashes (and says so when a fixed ovn-trace stops) and that the
	// implementation traces them without error.
	ovnTraceAborts []traceCase
}

// --- normalisation -----------------------------------------------------------

var (
	commentRE = regexp.MustCompile(`(?s)/\*.*?\*/`)
	spaceRE   = regexp.MustCompile(`\s+`)
)

// normalize returns the lines of a --minimal trace that must agree: every
// line after the first line beginning with "#" (ovn-trace's rendering of
// the microflow in OVS syntax), without /* */ comments (which may span
// lines), without lines beginning with "#", without blank lines, and with
// white space runs collapsed to one space. Output with no "#" line at all
// is taken whole. Compare the lines with sameTrace, which also ignores
// white space that separates nothing.
func normalize(out string) []string {
	lines := strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = lines[i+1:]
			break
		}
	}
	text := commentRE.ReplaceAllStringFunc(strings.Join(lines, "\n"), func(c string) string {
		return " " + strings.Repeat("\n", strings.Count(c, "\n"))
	})
	var res []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(spaceRE.ReplaceAllString(l, " "))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		res = append(res, l)
	}
	return res
}

// compareKey is a normalised line without the white space that carries no
// meaning: a space survives only between two characters that would
// otherwise run together into one token ("ct_next(ct_state=new|trk) {"
// and "ct_next( ct_state = new|trk ){" have the same key).
func compareKey(line string) string {
	isWord := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("_.:\"'$@-", b) >= 0
	}
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] == ' ' {
			if i > 0 && i+1 < len(line) && isWord(line[i-1]) && isWord(line[i+1]) {
				b.WriteByte(' ')
			}
			continue
		}
		b.WriteByte(line[i])
	}
	return b.String()
}

// sameTrace reports whether two normalised traces agree.
func sameTrace(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if compareKey(a[i]) != compareKey(b[i]) {
			return false
		}
	}
	return true
}

// lineDiff is a unified-style diff of a (ovn-trace) and b (under test),
// aligned on the longest common subsequence of compare keys: "-" for lines
// only ovn-trace has, "+" for lines only the implementation has, " " for
// lines both have.
func lineDiff(a, b []string) string {
	n, m := len(a), len(b)
	ka, kb := make([]string, n), make([]string, m)
	for i := range a {
		ka[i] = compareKey(a[i])
	}
	for j := range b {
		kb[j] = compareKey(b[j])
	}
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if ka[i] == kb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	out.WriteString("--- ovn-trace\n+++ under test\n")
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && ka[i] == kb[j]:
			fmt.Fprintf(&out, "  %s\n", a[i])
			i++
			j++
		case j >= m || i < n && lcs[i+1][j] >= lcs[i][j+1]:
			fmt.Fprintf(&out, "- %s\n", a[i])
			i++
		default:
			fmt.Fprintf(&out, "+ %s\n", b[j])
			j++
		}
	}
	return out.String()
}

// --- the suite -----------------------------------------------------------------

// TestDiffTrace compares the implementation's trace --minimal with
// ovn-trace --minimal on every topology and microflow, and requires its
// lflow check to accept every logical flow northd wrote.
func TestDiffTrace(t *testing.T) {
	impl := underTest(t)
	keep := os.Getenv(envKeep)
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatal(err)
		}
		writeKeepReadme(t, keep)
	}
	topos := topologies()
	var compared, ran atomic.Int64
	t.Run("topology", func(t *testing.T) {
		for _, topo := range topos {
			t.Run(topo.name, func(t *testing.T) {
				t.Parallel()
				r := diffTopology(t, impl, topo, keep)
				compared.Add(int64(r.compared))
				ran.Add(1)
				t.Logf("%s: %d microflows compared with %s, %d agree; %d deliver or change the packet, %d drop it; %d traced where ovn-trace aborts",
					topo.name, r.compared, impl.name, r.agree, r.nonEmpty, r.compared-r.nonEmpty, r.smoke)
			})
		}
	})
	t.Logf("%d microflows compared on %d topologies (implementation: %s)", compared.Load(), ran.Load(), impl.name)
	if keep != "" {
		t.Logf("cases and databases kept in %s", keep)
	}
	if int(ran.Load()) == len(topos) && compared.Load() < minCompared {
		t.Errorf("only %d microflows compared, want at least %d", compared.Load(), minCompared)
	}
}

type diffResult struct {
	compared, agree, nonEmpty int
	smoke                     int // traced where ovn-trace aborts, without error
}

func diffTopology(t *testing.T, impl tracer, topo topology, keep string) diffResult {
	e := ovntest.Start(t)
	topo.build(e)
	e.Sync()
	sb := e.SBRemote()

	var kept *keepWriter
	if keep != "" {
		kept = newKeepWriter(t, e, filepath.Join(keep, topo.name))
		defer kept.close(t)
	}

	if out, err := impl.check(sb); err != nil {
		t.Errorf("%s: lflow check --db %s failed: %v\n%s", topo.name, sb, err, out)
	} else {
		t.Logf("%s: lflow check: %s", topo.name, lastLine(out))
	}

	var r diffResult
	for i, tc := range topo.cases {
		want, err := e.Trace(tc.args("--minimal")...)
		if err != nil {
			t.Errorf("%s case %d (%s): ovn-trace failed, fix the test case: %v\n%s\n%s",
				topo.name, i, tc.label, err, tc.commandLine(sb, "--minimal"), want)
			continue
		}
		if kept != nil {
			detailed, err := e.Trace(tc.args("--detailed")...)
			if err != nil {
				t.Errorf("%s case %d (%s): ovn-trace --detailed failed: %v", topo.name, i, tc.label, err)
			}
			kept.add(i, tc, want, detailed)
		}
		got, err := impl.trace(sb, tc.args("--minimal"))
		r.compared++
		w, g := normalize(want), normalize(got)
		if len(w) > 0 {
			r.nonEmpty++
		}
		if err != nil {
			t.Errorf("%s case %d (%s): %s trace failed: %v\nreproduce: %s%s\n=== ovn-trace --minimal\n%s=== %s stdout\n%s",
				topo.name, i, tc.label, impl.name, err, tc.commandLine(sb, "--minimal"), keepHint(keep), want, impl.name, got)
			continue
		}
		if !sameTrace(w, g) {
			t.Errorf("%s case %d (%s): %s differs from ovn-trace\ndatapath:  %s\nmicroflow: %s\noptions:   %s\nreproduce: %s%s\n=== ovn-trace --minimal\n%s=== %s --minimal\n%s=== diff (normalised)\n%s",
				topo.name, i, tc.label, impl.name, tc.dp, tc.flow, tc.options(), tc.commandLine(sb, "--minimal"), keepHint(keep),
				want, impl.name, got, lineDiff(w, g))
			continue
		}
		r.agree++
	}
	for i, tc := range topo.ovnTraceAborts {
		out, err := e.Trace(tc.args("--minimal")...)
		if !ovntest.Crashed(err) {
			t.Errorf("%s: ovn-trace no longer aborts on %q (err %v): move it from ovnTraceAborts to cases\n%s",
				topo.name, tc.label, err, out)
			continue
		}
		if kept != nil {
			kept.addAborted(i, tc, err)
		}
		if impl.self {
			continue // the implementation is this ovn-trace: it aborts too
		}
		got, err := impl.trace(sb, tc.args("--minimal"))
		switch {
		case err != nil:
			t.Errorf("%s: %s trace failed on %q, on which ovn-trace aborts: %v\nreproduce: %s%s",
				topo.name, impl.name, tc.label, err, tc.commandLine(sb, "--minimal"), keepHint(keep))
		case len(normalize(got)) == 0:
			t.Errorf("%s: %s trace says nothing on %q (ovn-trace aborts there; a reply is expected)\nreproduce: %s",
				topo.name, impl.name, tc.label, tc.commandLine(sb, "--minimal"))
		default:
			r.smoke++
		}
	}

	// A suite of packets that all get dropped would agree trivially.
	if r.compared > 0 && 2*r.nonEmpty < r.compared {
		t.Errorf("%s: only %d of %d microflows do anything in ovn-trace; make the cases deliver packets", topo.name, r.nonEmpty, r.compared)
	}
	return r
}
