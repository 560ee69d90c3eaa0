package integration

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// run runs ovsbpfctl and returns its standard output followed by its
// standard error, the way a user reads them.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(ovsbpfctlBinary(t), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// exitCode returns a command's exit status (0 when err is nil).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	return ee.ExitCode()
}

// A Southbound with flows northd would never write: lflow check names each
// bad one and fails; the good ones still trace.
func TestLflowCheckNamesBadFlows(t *testing.T) {
	e := ovntest.StartWith(t, ovntest.Options{NoNorthd: true})
	sbctl := func(args ...string) string { return strings.TrimSpace(e.SBCtl(args...)) }
	dp := sbctl("create", "Datapath_Binding", "tunnel_key=1", "external_ids:name=sw0", "external_ids:logical-switch=00000000-0000-0000-0000-000000000001")
	sbctl("create", "Port_Binding", "logical_port=p1", "tunnel_key=1", "datapath="+dp)
	sbctl("create", "Port_Binding", "logical_port=p2", "tunnel_key=2", "datapath="+dp)
	lf := func(table, prio, match, actions string) string {
		return sbctl("create", "Logical_Flow", "logical_datapath="+dp, "pipeline=ingress", "table_id="+table,
			"priority="+prio, "match="+quote(match), "actions="+quote(actions))
	}
	lf("0", "10", "eth.dst == 00:00:00:00:00:02", `outport = "p2"; output;`)
	badMatch := lf("0", "20", "ip4.dst == $no_such_set", "next;")
	badAction := lf("0", "30", "tcp", "ct_frobnicate;")
	sbctl("create", "Logical_Flow", "logical_datapath="+dp, "pipeline=egress", "table_id=0", "priority=0", `match="1"`, `actions="output;"`)

	out, err := run(t, "lflow", "check", "--db", e.SBRemote())
	require.Equal(t, 1, exitCode(t, err), out)
	require.Contains(t, out, badMatch+": datapath sw0, ingress table 0 priority 20: parsing match failed: Syntax error at `$no_such_set' expecting address set name.")
	require.Contains(t, out, badAction+": datapath sw0, ingress table 0 priority 30: parsing actions failed: Syntax error at `ct_frobnicate' expecting action.")
	require.Contains(t, out, "4 logical flows, 2 pipeline rules, 2 skipped")

	// The rest of the pipeline still forwards.
	out, err = run(t, "trace", "--db", e.SBRemote(), "--minimal", "sw0",
		`inport == "p1" && eth.src == 00:00:00:00:00:01 && eth.dst == 00:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && tcp.dst == 80`)
	require.NoError(t, err, out)
	require.Equal(t, []string{`output("p2");`}, normalize(out))
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestTraceJSON(t *testing.T) {
	e := ovntest.Start(t)
	e.NBCtl("ls-add", "sw0")
	addLSP(e, "sw0", "p1", "00:00:00:00:00:01 10.0.0.1", "00:00:00:00:00:01 10.0.0.1")
	addLSP(e, "sw0", "p2", "00:00:00:00:00:02 10.0.0.2", "")
	e.Sync()
	out, err := run(t, "trace", "--db", e.SBRemote(), "--json", "sw0",
		`inport == "p1" && eth.src == 00:00:00:00:00:01 && eth.dst == 00:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && udp.src == 5000 && udp.dst == 53`)
	require.NoError(t, err, out)
	var res struct {
		Packet  string
		Outputs []struct {
			Port   string
			Packet string
			Fields map[string]string
		}
		Errors   []string
		Megaflow map[string]string
		Trace    []struct{ Kind, Text string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Len(t, res.Outputs, 1)
	require.Equal(t, "p2", res.Outputs[0].Port)
	require.Equal(t, "10.0.0.2", res.Outputs[0].Fields["ip_dst"])
	require.Equal(t, "53", res.Outputs[0].Fields["udp_dst"])
	require.Empty(t, res.Errors)
	require.Equal(t, "0xffffffffffff", res.Megaflow["eth_dst"], "the L2 lookup read the destination MAC")
	require.Equal(t, "0xffffffffffff", res.Megaflow["eth_src"], "port security read the source MAC")
	require.NotContains(t, res.Megaflow, "udp_src", "nothing read the UDP source port")
	require.Equal(t, "pipeline", res.Trace[0].Kind)
}

// Bad input is named in the error and the exit status is non-zero.
func TestTraceErrors(t *testing.T) {
	e := ovntest.Start(t)
	e.NBCtl("ls-add", "sw0")
	addLSP(e, "sw0", "p1", "00:00:00:00:00:01 10.0.0.1", "")
	e.Sync()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown datapath", []string{"nosuch", `inport == "p1"`}, `unknown datapath "nosuch"`},
		{"unparsable microflow", []string{"sw0", `inport == "p1" && tcp.dst ==`}, "error parsing flow: Syntax error at end of input expecting constant."},
		{"ambiguous microflow", []string{"sw0", `inport == "p1" && tcp.dst == 80`}, "error parsing flow: Constraints are ambiguous"},
		{"bad --ct", []string{"--ct", "new,bogus", "sw0", `inport == "p1"`}, `--ct "new,bogus": bogus: unknown connection tracking state flag`},
		{"bad --lb-dst", []string{"--lb-dst", "10.0.0.300", "sw0", `inport == "p1"`}, `--lb-dst "10.0.0.300": bad address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, append([]string{"trace", "--db", e.SBRemote()}, tt.args...)...)
			require.Equal(t, 1, exitCode(t, err), out)
			require.Contains(t, out, tt.want)
		})
	}
	out, err := run(t, "trace", "--db", "bogus", "sw0", "1")
	require.Equal(t, 1, exitCode(t, err), out)
	require.Contains(t, out, `bad remote "bogus": want unix:PATH or tcp:HOST:PORT`)
}
