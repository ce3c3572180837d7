package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func retentionBackfillCommand() *cobra.Command {
	var d deps
	var batch int
	cmd := &cobra.Command{
		Use:   "retention-backfill",
		Short: "Write a snapshot of every candidate-exam's retention facts and every council's settings to the outbox",
		Long: `Write a snapshot of every candidate-exam's retention facts, and of every
council's retention settings, to the registry's outbox (RetentionChanged v2,
topic nokstream.retention.v2), for the running registry to publish. The
archiver keeps its own copy of these facts; run this once when it first
keeps one, or after its copy was lost. It is safe to run again: a snapshot is
the state, and a later one replaces an earlier one. Progress goes to
standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			start := time.Now()
			last := time.Time{}
			n, err := st.RetentionBackfill(cmd.Context(), batch, time.Now(), func(done, total int) {
				if now := time.Now(); now.Sub(last) >= time.Second || done == total {
					last = now
					fmt.Fprintf(cmd.ErrOrStderr(), "retention backfill: %d of %d candidate-exams\n", done, total)
				}
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the facts of %d candidate-exams and every council's settings to the outbox in %s\n",
				n, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	d.dbFlag(cmd)
	cmd.Flags().IntVar(&batch, "batch", 500, "candidate-exams written per transaction")
	return cmd
}
