package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/atomicfile"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/registry/export"
)

func evidenceCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Evidence bundles of candidates' exams",
	}
	cmd.AddCommand(evidenceExportCommand(g))
	return cmd
}

func evidenceExportCommand(_ *globalFlags) *cobra.Command {
	var d deps
	var exam, candidate, purpose, out, sealKey, actor string
	cmd := &cobra.Command{
		Use:   "export --exam E --candidate C --purpose \"...\" -o bundle.tar",
		Short: "Write the evidence bundle of a candidate's exam (a tar that `nokstream verify` checks offline)",
		Long: `Write the evidence bundle of a candidate's exam: the original segments and
init segments, the seal (manifest and signature), the candidate's timeline,
the audit trail of the evidence and a README saying how to check it. The
export is written to the audit log, with its purpose, before the first byte.
-o - writes to standard output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if exam == "" || candidate == "" {
				return errors.New("--exam and --candidate are required")
			}
			if out == "" {
				return errors.New("-o is required: a file, or - for standard output")
			}
			st, err := d.openStore(ctx, false)
			if err != nil {
				return err
			}
			defer st.Close()
			blobStore, _, err := d.openBlob(ctx)
			if err != nil {
				return err
			}
			key, err := loadSealKey(sealKey, d.data)
			if err != nil {
				return err
			}
			if actor == "" {
				actor = "cli:" + os.Getenv("USER")
			}
			var w io.Writer = cmd.OutOrStdout()
			var f *atomicfile.File
			if out != "-" {
				// Written beside the target and renamed at the end: a
				// failed export leaves no partial bundle under its name.
				if f, err = atomicfile.Create(out, 0o600); err != nil {
					return err
				}
				defer f.Abort() // Nothing once committed.
				w = f
			}
			sum, err := export.Bundle(ctx, w, st, blobStore, key, export.Request{
				ExamID: exam, CandidateID: candidate, Purpose: purpose, ActorLogin: actor}, time.Now())
			if f != nil && err == nil {
				err = f.Commit()
			}
			if err != nil {
				return err
			}
			printProblems(cmd.ErrOrStderr(), sum)
			if out != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d objects, %d bytes of media, %d bytes in all\n", out, sum.Objects, sum.Bytes, sum.Total)
			}
			return nil
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	sealKeyFlag(cmd, &sealKey)
	cmd.Flags().StringVar(&exam, "exam", "", "exam id")
	cmd.Flags().StringVar(&candidate, "candidate", "", "candidate id")
	cmd.Flags().StringVar(&purpose, "purpose", "", "why the evidence is exported (required; written to the audit log)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "bundle file to write, or - for standard output")
	cmd.Flags().StringVar(&actor, "actor", "", "who exports, for the audit log (default cli:$USER)")
	return cmd
}

func printProblems(w io.Writer, sum bundle.Summary) {
	for _, p := range sum.Problems {
		fmt.Fprintf(w, "WARNING: %s: %s (the bundle carries it as stored; verify will name it)\n", p.Key, p.Detail)
	}
}
