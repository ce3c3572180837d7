package main

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// errVerifyFailed makes the exit status 1; the report says why.
var errVerifyFailed = errors.New("the bundle did not verify")

// exitOriginNotProven is verify's exit status for a bundle that is intact
// but was checked only with the key inside it.
const exitOriginNotProven = 3

// verifyEnv is what verify reaches outside the bundle.
type verifyEnv struct {
	// client fetches a --pubkey URL.
	client *http.Client
	// configDir is the user's configuration directory, where the pinned
	// key is kept (os.UserConfigDir).
	configDir func() (string, error)
}

func verifyCommand(_ *globalFlags) *cobra.Command {
	return newVerifyCommand(verifyEnv{client: &http.Client{Timeout: 30 * time.Second}, configDir: os.UserConfigDir})
}

func newVerifyCommand(env verifyEnv) *cobra.Command {
	var pubkey string
	var pin bool
	cmd := &cobra.Command{
		Use:   "verify <bundle.tar | -> [--pubkey FILE|URL] [--pin]",
		Short: "Check an evidence bundle offline: every hash, the chains, the Merkle root, the signatures",
		Long: `Check an evidence bundle offline, with no server: its layout (one directory
named for the exam and the candidate, each file once and in its place),
every object's size and SHA-256 against the signed manifest, their order and
completeness, each stream's hash chain, the manifest's Merkle root and
Ed25519 signature, and export.json with its signature, naming the same
exam, candidate and manifest. The bundle is read once, front to back.

The key the signatures are checked with, in this order:
  --pubkey FILE   the archive's public key (PEM, as GET /api/v1/keys/seal
                  serves it, or the base64 or hex of its 32 bytes)
  --pubkey URL    https://<registry>/api/v1/keys/seal of an archive you
                  trust, fetched over HTTPS only
  the pinned key  $XDG_CONFIG_HOME/nokstream/seal.pub (~/.config/nokstream/
                  seal.pub): a key you pinned on this machine, with
                  verify --pubkey FILE|URL --pin (a bundle is then optional)
  the bundle's    seal/seal.pub inside the bundle: this proves the bundle
                  intact, not who made it

Exit status:
  0  the bundle verified with a key you gave or pinned
  1  it did not verify (the first bad file is named, with what is wrong:
     altered, missing, reordered, extra, format, ...), or it could not be
     checked
  3  it is intact, but the only key was the bundle's own; stderr says
     ORIGIN NOT PROVEN: give --pubkey, or pin the archive's key

Everything the report echoes from the bundle has its control characters
escaped (\xNN, \uNNNN), so a bundle cannot write to the terminal.`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !pin {
				return errors.New("verify: which bundle? give a file, or - for stdin")
			}
			if pin && pubkey == "" {
				return errors.New("verify --pin: give the key to pin with --pubkey FILE|URL")
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			key, source, err := verifyKey(cmd, env, pubkey, pin, out)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return out.Flush()
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
			printReport(out, rep, source)
			if err := out.Flush(); err != nil {
				return err
			}
			switch {
			case !rep.OK():
				return errVerifyFailed
			case rep.KeyFromBundle:
				return &exitError{status: exitOriginNotProven, msg: fmt.Sprintf(
					"ORIGIN NOT PROVEN: signed by a key inside the bundle (key id %s); give --pubkey", esc(rep.KeyID))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubkey, "pubkey", "", "the archive's public key: a file (PEM, or base64/hex of its 32 bytes), or an https:// URL of /api/v1/keys/seal")
	cmd.Flags().BoolVar(&pin, "pin", false, "pin the --pubkey key on this machine ($XDG_CONFIG_HOME/nokstream/seal.pub), used when no --pubkey is given")
	return cmd
}

// verifyKey returns the key to check with and where it came from: the one
// given (pinned too with --pin), or the pinned one, or none.
func verifyKey(cmd *cobra.Command, env verifyEnv, pubkey string, pin bool, out io.Writer) (ed25519.PublicKey, string, error) {
	pinned := func() (string, error) {
		dir, err := env.configDir()
		if err != nil {
			return "", fmt.Errorf("where to keep the pinned key: %w", err)
		}
		return seal.PinnedKeyPath(dir), nil
	}
	if pubkey == "" {
		path, err := pinned()
		if err != nil {
			return nil, "", err
		}
		key, err := seal.LoadPinnedKey(path)
		if err != nil || key == nil {
			return nil, "", err
		}
		return key, "pinned in " + path, nil
	}
	var key ed25519.PublicKey
	source := "given with --pubkey " + pubkey
	if strings.Contains(pubkey, "://") {
		k, err := seal.FetchPublicKey(cmd.Context(), env.client, pubkey)
		if err != nil {
			return nil, "", fmt.Errorf("--pubkey: %w", err)
		}
		key = k
		if u, err := url.Parse(pubkey); err == nil {
			source = "given with --pubkey " + u.Redacted()
		}
	} else {
		b, err := os.ReadFile(pubkey)
		if err != nil {
			return nil, "", fmt.Errorf("--pubkey: %w", err)
		}
		if key, err = seal.ParsePublicKey(b); err != nil {
			return nil, "", fmt.Errorf("--pubkey %s: %w", pubkey, err)
		}
	}
	if pin {
		path, err := pinned()
		if err != nil {
			return nil, "", err
		}
		if err := seal.PinKey(path, key); err != nil {
			return nil, "", err
		}
		fmt.Fprintf(out, "pinned key %s in %s\n", seal.KeyID(key), esc(path))
	}
	return key, source, nil
}

// printReport writes what Verify found, every field from the bundle escaped.
func printReport(w io.Writer, r *bundle.Report, source string) {
	fmt.Fprintf(w, "bundle of exam %s, candidate %s\n", esc(r.ExamID), esc(r.CandidateID))
	fmt.Fprintf(w, "  %d objects, %d bytes of media, %d bytes read; Merkle root %s\n", r.Objects, r.Bytes, r.Read, esc(r.MerkleRoot))
	if r.MerkleRoot != "" {
		// A later version of the seal may list more (footage or a document
		// that came late): the version says which one this bundle is.
		fmt.Fprintf(w, "  seal version %d, sealed %s, naming %d earlier versions; ask the archive whether it has a later one\n",
			r.SealVersion, r.SealedAt.UTC().Format("2006-01-02 15:04:05Z07:00"), r.Previous)
	}
	switch {
	case r.KeyFromBundle:
		fmt.Fprintf(w, "  checked with the key inside the bundle (%s): that proves it intact, not who made it; "+
			"compare it with the archive's published key (GET /api/v1/keys/seal), or pass --pubkey\n", esc(r.KeyID))
	case r.KeyID != "":
		fmt.Fprintf(w, "  checked with key %s, %s\n", esc(r.KeyID), esc(source))
	}
	if x := r.Export; x != nil {
		fmt.Fprintf(w, "  exported %s by %s, purpose: %s\n", x.ExportedAt.Format("2006-01-02 15:04:05Z07:00"), esc(x.ExportedBy), esc(x.Purpose))
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", esc(s))
	}
	if r.OK() && r.KeyFromBundle {
		// Anyone can re-sign a bundle whole with a key of their own: with
		// the bundle's key the OK would be a forger's as much as the
		// archive's, so it is not said.
		fmt.Fprintln(w, "INTACT, ORIGIN NOT PROVEN: every hash, chain and the Merkle root verify, and the signatures "+
			"verify with the key inside the bundle, which anyone could have made; give --pubkey")
		return
	}
	if r.OK() {
		if len(r.Warnings) > 0 {
			// Verified as the seal states it, and the seal states its own
			// breaks: the OK is not a claim that nothing is missing.
			fmt.Fprintf(w, "OK: every hash, chain, the Merkle root and the signatures verify, with warnings (%d, above): "+
				"breaks and problems the seal or the export declares of the evidence itself\n", len(r.Warnings))
			return
		}
		fmt.Fprintln(w, "OK: every hash, chain, the Merkle root and the signatures verify")
		return
	}
	fmt.Fprintf(w, "FAILED: %s\n", esc(r.Problems[0].String()))
	for _, p := range r.Problems[1:] {
		fmt.Fprintf(w, "  also: %s\n", esc(p.String()))
	}
	if r.MoreProblems > 0 {
		fmt.Fprintf(w, "  and %d more problems\n", r.MoreProblems)
	}
}

// esc escapes what a terminal would act on rather than show: control
// characters (\n, \t, \xNN, \u0085), format characters such as the
// bidirectional overrides (\u202e), line and paragraph separators, bytes
// that are not UTF-8 (\xNN), and the backslash itself (\\), so that the
// escapes cannot be forged. Other text, Cyrillic included, is kept.
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
