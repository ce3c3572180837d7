package main

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/archiver/bundle"
	"github.com/nokstream/nokstream/archiver/seal"
)

// errVerifyFailed makes the exit status non-zero; the report says why.
var errVerifyFailed = errors.New("the bundle did not verify")

func verifyCommand(_ *globalFlags) *cobra.Command {
	var pubkey string
	cmd := &cobra.Command{
		Use:   "verify <bundle.tar | -> [--pubkey FILE]",
		Short: "Check an evidence bundle offline: every hash, the chains, the Merkle root, the signatures",
		Long: `Check an evidence bundle offline, with no server: every object's size and
SHA-256 against the signed manifest, their order and completeness, each
stream's hash chain, the manifest's Merkle root and Ed25519 signature, and
export.json with its signature. The bundle is read once, front to back.

--pubkey is the archive's public key (PEM, as GET /api/v1/keys/seal serves
it). Without it the key inside the bundle is used, which proves the bundle is
intact but not who made it. The first bad object is named with what is wrong
(altered, missing, reordered, extra); the exit status is non-zero.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var key ed25519.PublicKey
			if pubkey != "" {
				b, err := os.ReadFile(pubkey)
				if err != nil {
					return fmt.Errorf("--pubkey: %w", err)
				}
				if key, err = seal.ParsePublicKey(b); err != nil {
					return fmt.Errorf("--pubkey %s: %w", pubkey, err)
				}
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close() // Read only.
				r = f
			}
			rep, err := bundle.Verify(r, key)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			printReport(out, rep)
			if !rep.OK() {
				return errVerifyFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "the archive's public key (PEM, or base64/hex of its 32 bytes)")
	return cmd
}

func printReport(w io.Writer, r *bundle.Report) {
	fmt.Fprintf(w, "bundle of exam %s, candidate %s\n", r.ExamID, r.CandidateID)
	fmt.Fprintf(w, "  %d objects, %d bytes of media, %d bytes read; Merkle root %s\n", r.Objects, r.Bytes, r.Read, r.MerkleRoot)
	if r.KeyFromBundle {
		fmt.Fprintf(w, "  checked with the key inside the bundle (%s): compare it with the archive's published key (GET /api/v1/keys/seal), or pass --pubkey\n", r.KeyID)
	} else if r.KeyID != "" {
		fmt.Fprintf(w, "  checked with key %s\n", r.KeyID)
	}
	if x := r.Export; x != nil {
		fmt.Fprintf(w, "  exported %s by %s, purpose: %s\n", x.ExportedAt.Format("2006-01-02 15:04:05Z07:00"), x.ExportedBy, x.Purpose)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", s)
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: every hash, chain, the Merkle root and the signatures verify")
		return
	}
	fmt.Fprintf(w, "FAILED: %s\n", r.Problems[0])
	for _, p := range r.Problems[1:] {
		fmt.Fprintf(w, "  also: %s\n", p)
	}
}
