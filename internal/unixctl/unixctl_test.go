package unixctl

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func serve(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "test.ctl")
	s, err := Listen(path, nil)
	require.NoError(t, err)
	s.Register("echo", "WORD...", 1, 3, func(args []string) (string, error) { return strings.Join(args, " ") + "\n", nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return path
}

func TestCall(t *testing.T) {
	path := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := Call(ctx, path, "echo", "a", "b")
	require.NoError(t, err)
	require.Equal(t, "a b\n", out)

	_, err = Call(ctx, path, "nope")
	var ce *CommandError
	require.ErrorAs(t, err, &ce)
	require.Contains(t, ce.Text, `"nope" is not a valid command`)

	_, err = Call(ctx, path, "echo")
	require.ErrorContains(t, err, "takes at least 1 arguments and at most 3")

	out, err = Call(ctx, path, "list-commands")
	require.NoError(t, err)
	require.Contains(t, out, "echo")
}

func TestOVSAppctlSpeaksTheProtocol(t *testing.T) {
	path := serve(t)
	out, err := exec.Command("ovs-appctl", "-t", path, "echo", "hello", "world").CombinedOutput()
	require.NoError(t, err, "ovs-appctl (Debian's openvswitch-common): %s", out)
	require.Equal(t, "hello world\n", string(out))
	out, err = exec.Command("ovs-appctl", "-t", path, "bogus").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `"bogus" is not a valid command`)
}
