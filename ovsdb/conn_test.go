package ovsdb

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckRemote(t *testing.T) {
	tests := []struct {
		remote string
		ok     bool
	}{
		{"unix:/run/ovn/ovnsb_db.sock", true},
		{"tcp:127.0.0.1:6642", true},
		{"tcp:[::1]:6642", true},
		{"unix:", false},
		{"tcp:127.0.0.1", false},
		{"tcp::6642", false},
		{"/run/ovn/ovnsb_db.sock", false},
		{"ssl:127.0.0.1:6642", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			err := CheckRemote(tt.remote)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadRemote)
			require.EqualError(t, err, fmt.Sprintf("bad remote %q: want unix:PATH or tcp:HOST:PORT", tt.remote))
		})
	}
}

// closedTCPRemote returns a loopback TCP remote that nothing listens on.
func closedTCPRemote(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "tcp:" + addr
}

// silentRemote returns a unix remote whose server accepts connections and
// never answers.
func silentRemote(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "silent.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return "unix:" + sock
}

func TestReadSouthboundErrors(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		is     error  // the error wraps this, if not nil
		msg    string // and its text starts with this
	}{
		{name: "not a remote", remote: "foo", is: ErrBadRemote,
			msg: `bad remote "foo": want unix:PATH or tcp:HOST:PORT`},
		{name: "tcp without port", remote: "tcp:localhost", is: ErrBadRemote,
			msg: `bad remote "tcp:localhost": want unix:PATH or tcp:HOST:PORT`},
		{name: "no socket", remote: "unix:" + filepath.Join(t.TempDir(), "absent.sock"),
			msg: "connecting to southbound unix:"},
		{name: "nothing listening", remote: closedTCPRemote(t), msg: "connecting to southbound tcp:127.0.0.1:"},
		{name: "server never answers", remote: silentRemote(t), is: context.DeadlineExceeded,
			msg: "connecting to southbound unix:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			sb, err := ReadSouthbound(ctx, tt.remote, nil)
			require.Error(t, err)
			require.Nil(t, sb)
			require.Less(t, time.Since(start), 5*time.Second, "the context bounds the read")
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			require.Truef(t, strings.HasPrefix(err.Error(), tt.msg), "error %q does not start with %q", err, tt.msg)
		})
	}
}

func TestMonitorsRejectBadRemote(t *testing.T) {
	_, err := NewSouthboundMonitor("tcp:nohostport", nil)
	require.ErrorIs(t, err, ErrBadRemote)
	_, err = NewLocalMonitor("db.sock", nil)
	require.ErrorIs(t, err, ErrBadRemote)
}
