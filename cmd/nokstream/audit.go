package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// errAuditBroken makes the exit status 1; the output says where.
var errAuditBroken = errors.New("the audit log does not verify")

func auditCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "The audit log of every access to media and documents",
	}
	cmd.AddCommand(auditVerifyCommand(g))
	return cmd
}

func auditVerifyCommand(_ *globalFlags) *cobra.Command {
	var d deps
	var anchors []string
	cmd := &cobra.Command{
		Use:   "verify [--anchor ID:HASH]...",
		Short: "Check the audit log's hash chain and name the first row changed, inserted or removed",
		Long: `Check the audit log's hash chain: each row carries the SHA-256 of the row
before it chained with its own content, so a row changed, inserted or
removed breaks the chain there. The first such row is named and the exit
status is 1.

The last line is the head of the chain (its row and hash). Recorded
somewhere else (a ticket, a seal, a letter), it is an anchor: later,
--anchor ID:HASH checks that the log up to that row was not rewritten as a
whole, which the chain alone cannot prove to someone who could rewrite every
row after the change.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := d.openStore(ctx, false)
			if err != nil {
				return err
			}
			defer st.Close()
			errOut := cmd.ErrOrStderr()
			brk, head, err := st.VerifyAuditLog(ctx, func(rows int64) { fmt.Fprintf(errOut, "audit: %d rows checked\n", rows) })
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			failed := false
			if brk != nil {
				fmt.Fprintf(out, "BROKEN: %s\n", brk)
				failed = true
			}
			for _, a := range anchors {
				idText, want, ok := strings.Cut(a, ":")
				id, err := strconv.ParseInt(idText, 10, 64)
				if !ok || err != nil {
					return fmt.Errorf("--anchor %q: want ID:HASH, as a head line printed", a)
				}
				got, err := st.AuditHash(ctx, id)
				if err != nil {
					return err
				}
				switch {
				case got == "":
					fmt.Fprintf(out, "BROKEN: anchor row %d is gone\n", id)
					failed = true
				case !strings.EqualFold(got, want):
					fmt.Fprintf(out, "BROKEN: anchor row %d has hash %s, recorded %s: the log was rewritten\n", id, got, want)
					failed = true
				default:
					fmt.Fprintf(out, "anchor row %d holds\n", id)
				}
			}
			fmt.Fprintf(out, "%d rows verified; head %d:%s\n", head.Rows, head.ID, head.Hash)
			if failed {
				return errAuditBroken
			}
			return nil
		},
	}
	d.dbFlag(cmd)
	cmd.Flags().StringArrayVar(&anchors, "anchor", nil, "ID:HASH of a head printed earlier, to check it still holds")
	return cmd
}
