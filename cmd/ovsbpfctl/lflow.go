package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newLflowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lflow",
		Short: "Check logical flows as ovsbpf compiles them",
	}
	var db dbFlags
	check := &cobra.Command{
		Use:   "check",
		Short: "List logical flows that ovsbpf skips, and exit non-zero if there are any",
		Long: `check reads every logical flow from the Southbound database and compiles it
as ovsbpfd would. A flow whose match or actions do not parse, or that uses an
action ovsbpf does not support, is left out of the pipeline; check lists each
such flow with its UUID, where it is and why, and exits with status 1. It
exits 0 when every flow compiles.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tr, err := db.load(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			skips := tr.Skipped()
			for _, s := range skips {
				where := fmt.Sprintf("%s table %d priority %d", s.Pipeline, s.Table, s.Priority)
				if s.Datapath != "" {
					where = "datapath " + s.Datapath + ", " + where
				}
				fmt.Fprintf(out, "%s: %s: %s\n    match: %s\n    actions: %s\n", s.UUID, where, s.Reason, s.Match, s.Actions)
			}
			st := tr.Stats()
			fmt.Fprintf(out, "%d logical flows, %d pipeline rules, %d skipped\n", st.LogicalFlows, st.Rules, st.Skipped)
			if len(skips) > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	db.register(check)
	cmd.AddCommand(check)
	return cmd
}
