package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/archiver"
)

func retentionCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Retention of archived objects",
	}
	cmd.AddCommand(retentionExplainCommand(g))
	return cmd
}

func retentionExplainCommand(_ *globalFlags) *cobra.Command {
	var d deps
	var f retentionFlags
	var overdue bool
	cmd := &cobra.Command{
		Use:   "explain <object key | exam/candidate> | --overdue",
		Short: "Say why an object is kept until when, or why and when it was deleted",
		Long: `Say why an archived object is kept until when: which exams and candidates
it is evidence for, their certificates, conclusions and appeals, and the rule
that gives the date; or, for a deleted object, when and under which rule it
was deleted. For <exam>/<candidate>, say what the candidate-exam asks of its
evidence, how many objects it has, which are kept longer for others, and its
seal. With --overdue, list the candidate-exams of overdue evidence: their
result is missing after the provisional period, and their evidence is held
until a result, an appeal's end or the council's disposal. The retention
flags must be the archiver's.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if overdue {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// The archiver's store: its records, and its copy of the
			// registry's facts.
			ast, err := d.openArchiverStore(ctx)
			if err != nil {
				return err
			}
			defer ast.Close()
			var text string
			if overdue {
				text, err = archiver.ExplainOverdue(ctx, ast, f.settings(), time.Now())
			} else {
				text, err = archiver.Explain(ctx, ast, ast, f.settings(), time.Now(), args[0])
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	d.dbFlag(cmd)
	f.register(cmd)
	cmd.Flags().BoolVar(&overdue, "overdue", false, "list the candidate-exams of overdue evidence")
	return cmd
}
