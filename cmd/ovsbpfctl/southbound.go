package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb"
)

// dbFlags are the options every command that reads the Southbound shares.
type dbFlags struct {
	remote      string
	timeout     time.Duration
	warnSkipped bool // say when logical flows were left out
}

func defaultSouthbound() string {
	if s := os.Getenv("OVN_SB_DB"); s != "" {
		return s
	}
	return "unix:/var/run/ovn/ovnsb_db.sock"
}

func (f *dbFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.remote, "db", defaultSouthbound(),
		"Southbound database to read: unix:PATH or tcp:HOST:PORT (default from $OVN_SB_DB)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up reading the database after this long")
}

// load reads the Southbound and builds the logical pipeline from it.
func (f *dbFlags) load(ctx context.Context) (*ovn.Translator, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	sb, err := ovsdb.ReadSouthbound(ctx, f.remote, slog.Default())
	if err != nil {
		return nil, err
	}
	// Skipped flows are listed by "lflow check"; here one warning says
	// how many there are, unless -v asked for each.
	logger := slog.Default()
	if !logger.Enabled(ctx, slog.LevelDebug) {
		logger = slog.New(slog.DiscardHandler)
	}
	tr := ovn.NewTranslator(ovn.Options{Logger: logger})
	if err := tr.Load(sb); err != nil {
		return nil, fmt.Errorf("building logical pipeline: %w", err)
	}
	if n := tr.Stats().Skipped; n > 0 && f.warnSkipped {
		slog.Warn(fmt.Sprintf("%d logical flows do not compile and are left out; see ovsbpfctl lflow check", n))
	}
	return tr, nil
}
