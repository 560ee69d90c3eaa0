package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A bad flag fails before anything is created, and the error names the
// flag and the value.
func TestFlagsAreCheckedFirst(t *testing.T) {
	good := func() options {
		return options{logLevel: "info", maxIdle: 10 * time.Second, pinPath: "none", ovnRemote: "unix:/run/ovn/ovnsb_db.sock"}
	}
	tests := []struct {
		name   string
		change func(*options)
		err    string // "" for none
	}{
		{"defaults", func(*options) {}, ""},
		{"a log level", func(o *options) { o.logLevel = "debug" }, ""},
		{"an unknown log level", func(o *options) { o.logLevel = "chatty" }, `--log-level "chatty"`},
		{"a Southbound remote of no known kind", func(o *options) { o.ovnRemote = "http://sb" }, "--ovn-remote"},
		{"negative handlers", func(o *options) { o.handlers = -1 }, "--handlers -1"},
		{"more handlers than executors", func(o *options) { o.handlers = 10_000 }, "--handlers 10000"},
		{"a flow limit", func(o *options) { o.flowLimit = 50_000 }, ""},
		{"a negative flow limit", func(o *options) { o.flowLimit = -5 }, "--flow-limit -5"},
		{"a flow limit beyond any host's need", func(o *options) { o.flowLimit = 1 << 30 }, "--flow-limit 1073741824"},
		{"no idle time", func(o *options) { o.maxIdle = 0 }, "--max-idle 0s"},
		{"a negative busy poll", func(o *options) { o.busyPoll = -time.Millisecond }, "--upcall-busy-poll -1ms"},
		{"an empty pin path", func(o *options) { o.pinPath = "" }, `--pin-path ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.change(&o)
			_, err := o.validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.err)
		})
	}
}
