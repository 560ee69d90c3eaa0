package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// The parsers' seed corpus: every distinct (match, actions) pair ovn-northd
// wrote for the topologies of this package. It is a golden file: this test
// fails when northd (or a topology) changes what it writes, and
//
//	OVSBPF_WRITE_LFLOWS=1 go test ./integration -run TestLflowCorpus
//
// rewrites it.

const (
	envWriteLflows = "OVSBPF_WRITE_LFLOWS"
	corpusPath     = "flowxlate/ovn/testdata/northd_lflows.txt" // from the repository root
)

// corpusEscaper keeps one pair per line and the tab as the only separator.
// Northd writes neither tabs nor newlines today; backslashes (in quoted
// strings) are left alone so that the lines read as northd wrote them.
var corpusEscaper = strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`)

// lflowPairs returns the (match, actions) pairs of the Southbound's
// Logical_Flow table as corpus lines.
func lflowPairs(e *ovntest.Env) []string {
	out := e.SBCtl("--format=json", "--columns=match,actions", "list", "Logical_Flow")
	var table struct{ Data [][2]string }
	if err := json.Unmarshal([]byte(out), &table); err != nil {
		panic(err)
	}
	lines := make([]string, 0, len(table.Data))
	for _, r := range table.Data {
		lines = append(lines, corpusEscaper.Replace(r[0])+"\t"+corpusEscaper.Replace(r[1]))
	}
	return lines
}

func TestLflowCorpus(t *testing.T) {
	var (
		mu    sync.Mutex
		pairs = map[string]bool{}
	)
	t.Run("topology", func(t *testing.T) {
		for _, topo := range topologies() {
			t.Run(topo.name, func(t *testing.T) {
				t.Parallel()
				e := ovntest.Start(t)
				topo.build(e)
				e.Sync()
				lines := lflowPairs(e)
				mu.Lock()
				for _, l := range lines {
					pairs[l] = true
				}
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	want := make([]string, 0, len(pairs))
	for p := range pairs {
		want = append(want, p)
	}
	sort.Strings(want)

	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, corpusPath)
	if os.Getenv(envWriteLflows) == "1" {
		if err := os.WriteFile(path, []byte(strings.Join(want, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d distinct (match, actions) pairs to %s", len(want), path)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the corpus (write it with %s=1): %v", envWriteLflows, err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		have[l] = true
	}
	var missing, extra []string
	for _, l := range want {
		if !have[l] {
			missing = append(missing, l)
		}
	}
	for l := range have {
		if !pairs[l] {
			extra = append(extra, l)
		}
	}
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%s is stale: %d pairs northd writes are missing, %d in it northd no longer writes; rerun with %s=1\nmissing (first 10):\n  %s\nextra (first 10):\n  %s",
			corpusPath, len(missing), len(extra), envWriteLflows, strings.Join(first(missing, 10), "\n  "), strings.Join(first(extra, 10), "\n  "))
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
