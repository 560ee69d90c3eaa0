package netns

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// A namespace left by a test process that was killed before its cleanup
// ran is deleted by the next New; one whose creator lives is not.
func TestNewDeletesOrphansOfExitedProcesses(t *testing.T) {
	exited := exec.Command("true")
	require.NoError(t, exited.Run())
	orphan := fmt.Sprintf("ovsbpf-test-p%d-abcdef", exited.Process.Pid)
	living := fmt.Sprintf("ovsbpf-test-p%d-fedcba", os.Getppid())
	for _, name := range []string{orphan, living} {
		out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
		require.NoError(t, err, "creating %s: %s", name, out)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}

	ns := New(t, "ovsbpf-test")
	require.NoFileExists(t, "/run/netns/"+orphan, "the orphan of an exited process is deleted")
	require.FileExists(t, "/run/netns/"+living, "a living process's namespace is kept")
	require.FileExists(t, "/run/netns/"+ns.Name)
	require.Regexp(t, fmt.Sprintf(`^ovsbpf-test-p%d-[0-9a-f]{6}$`, os.Getpid()), ns.Name)
}
