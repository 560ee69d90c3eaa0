package integration

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// OVSBPF_DIFF_KEEP=DIR leaves, per topology, what ovsbpfctl needs to be
// worked on without northd: the databases and ovn-trace's answers.

const keepReadme = `Differential-trace cases, written by
  OVSBPF_DIFF_KEEP=DIR go test ./integration -run TestDiffTrace

One directory per topology:
  nb.db      the Northbound database the topology built (ovsdb-client backup)
  sb.db      the Southbound database ovn-northd wrote from it
  cases.txt  every microflow traced, with ovn-trace's --minimal and --detailed output

Serve a Southbound and trace against it, no northd needed:
  cp DIR/router/sb.db /tmp/sb.db
  ovsdb-server --remote=punix:/tmp/sb.sock --unixctl=/tmp/sb.ctl --pidfile=/tmp/sb.pid --detach /tmp/sb.db
  ovsbpfctl trace --db unix:/tmp/sb.sock --minimal ls-rt-a 'inport == "rt-a1" && ...'

cases.txt format, one block per case:
  === case N: LABEL
  datapath: DATAPATH
  microflow: MICROFLOW
  options: --ct ... --lb-dst ...       (empty when none)
  command: ovn-trace --db SB ... --minimal DATAPATH 'MICROFLOW'
  --- minimal
  <ovn-trace --minimal output, verbatim>
  --- detailed
  <ovn-trace --detailed output, verbatim>
  === end

Cases numbered A0, A1, ... (with a line "aborted: true") are packets on which
this ovn-trace crashes, so they have no reference output; the suite only
requires ovsbpfctl to trace them without error.
`

func writeKeepReadme(t *testing.T, dir string) {
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte(keepReadme), 0o644); err != nil {
		t.Fatal(err)
	}
}

type keepWriter struct {
	dir string
	f   *os.File
	w   *bufio.Writer
}

// newKeepWriter empties dir and writes the topology's databases to it.
func newKeepWriter(t *testing.T, e *ovntest.Env, dir string) *keepWriter {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := e.SnapshotNB(filepath.Join(dir, "nb.db")); err != nil {
		t.Fatalf("keeping the NB database: %v", err)
	}
	if err := e.SnapshotSB(filepath.Join(dir, "sb.db")); err != nil {
		t.Fatalf("keeping the SB database: %v", err)
	}
	f, err := os.Create(filepath.Join(dir, "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return &keepWriter{dir: dir, f: f, w: bufio.NewWriter(f)}
}

func (k *keepWriter) add(i int, tc traceCase, minimal, detailed string) {
	fmt.Fprintf(k.w, "=== case %d: %s\ndatapath: %s\nmicroflow: %s\noptions: %s\ncommand: %s\n--- minimal\n%s",
		i, tc.label, tc.dp, tc.flow, tc.options(), tc.commandLine("SB", "--minimal"), withNewline(minimal))
	fmt.Fprintf(k.w, "--- detailed\n%s=== end\n\n", withNewline(detailed))
}

// addAborted records a case on which ovn-trace crashed.
func (k *keepWriter) addAborted(i int, tc traceCase, err error) {
	msg := strings.TrimSpace(err.Error())
	var ce *ovntest.CommandError
	if errors.As(err, &ce) {
		msg = fmt.Sprintf("%v: %s", ce.Err, strings.TrimSpace(ce.Stderr))
	}
	fmt.Fprintf(k.w, "=== case A%d: %s\ndatapath: %s\nmicroflow: %s\noptions: %s\ncommand: %s\naborted: true\n--- minimal\n(ovn-trace aborted: %s)\n--- detailed\n(ovn-trace aborted)\n=== end\n\n",
		i, tc.label, tc.dp, tc.flow, tc.options(), tc.commandLine("SB", "--minimal"), msg)
}

func (k *keepWriter) close(t *testing.T) {
	if err := k.w.Flush(); err != nil {
		t.Error(err)
	}
	if err := k.f.Close(); err != nil {
		t.Error(err)
	}
}

func withNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
