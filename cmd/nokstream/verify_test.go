package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// verifyRun is one run of `nokstream verify`.
type verifyRun struct {
	status         int
	stdout, stderr string
}

// runVerify runs `nokstream verify args...` with configDir as the user's
// configuration directory and client for key URLs, and returns its exit
// status and output.
func runVerify(t *testing.T, configDir string, client *http.Client, args ...string) verifyRun {
	t.Helper()
	root := &cobra.Command{Use: "nokstream", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newVerifyCommand(verifyEnv{client: client, configDir: func() (string, error) { return configDir, nil }}))
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"verify"}, args...))
	status := run(context.Background(), root, &stderr)
	return verifyRun{status: status, stdout: stdout.String(), stderr: stderr.String()}
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVerifyExitStatus: verify exits 0 only when the signatures verify with
// a key the user gave (a file, or an https URL of the registry's key) or
// pinned on this machine; 1 when anything fails, the forged bundle of the
// issue (a second manifest naming another candidate after the objects)
// included; 3, saying ORIGIN NOT PROVEN on stderr, when the bundle is intact
// but the only key was its own, as for a bundle a forger signed whole with
// his key.
func TestVerifyExitStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive, forger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	pub := archive.Public().(ed25519.PublicKey)
	genuine, err := bundletest.Small(filepath.Join(dir, "store1"), "c1", "appeal 12", archive)
	if err != nil {
		t.Fatal(err)
	}
	other, err := bundletest.Small(filepath.Join(dir, "store2"), "c2", "appeal 13", archive)
	if err != nil {
		t.Fatal(err)
	}
	forgeries, err := bundletest.Forge(bundletest.Genuine{Bundle: genuine, Other: other, Key: forger})
	if err != nil {
		t.Fatal(err)
	}
	forged := map[string]string{}
	for _, f := range forgeries {
		forged[f.Name] = write(t, dir, strings.ReplaceAll(f.Name, "/", "-")+".tar", f.Bundle)
	}
	good := write(t, dir, "genuine.tar", genuine)
	second := forged["a second manifest, of another candidate, after the objects"]
	resigned := forged["signed with another key"]
	keyFile := write(t, dir, "seal.pub", seal.MarshalPublicKey(pub))

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"algorithm": "Ed25519", "key_id": seal.KeyID(pub),
			"pem": string(seal.MarshalPublicKey(pub))})
	}))
	t.Cleanup(srv.Close)
	keyURL := srv.URL + "/api/v1/keys/seal"
	noPin, pinned := t.TempDir(), t.TempDir()
	if r := runVerify(t, pinned, srv.Client(), "--pubkey", keyURL, "--pin"); r.status != 0 ||
		!strings.Contains(r.stdout, "pinned key "+seal.KeyID(pub)) {
		t.Fatalf("--pin: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(pinned, "nokstream", "seal.pub")); err != nil || !bytes.Equal(b, seal.MarshalPublicKey(pub)) {
		t.Fatalf("the pinned key file: %v %q", err, b)
	}
	badPin := t.TempDir()
	if err := os.MkdirAll(filepath.Join(badPin, "nokstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(badPin, "nokstream"), "seal.pub", []byte("not a key\n"))
	originNotProven := func(key ed25519.PrivateKey) string {
		return fmt.Sprintf("ORIGIN NOT PROVEN: signed by a key inside the bundle (key id %s); give --pubkey\n",
			seal.KeyID(key.Public().(ed25519.PublicKey)))
	}

	for _, tc := range []struct {
		name      string
		configDir string
		args      []string
		status    int
		stdout    string // a line the report must have
		stderr    string // all of stderr
	}{
		{"genuine, key file", noPin, []string{good, "--pubkey", keyFile}, 0, "OK: every hash", ""},
		{"genuine, key URL", noPin, []string{good, "--pubkey", keyURL}, 0, "checked with key " + seal.KeyID(pub) + ", given with --pubkey " + keyURL, ""},
		{"genuine, pinned key", pinned, []string{good}, 0, "checked with key " + seal.KeyID(pub) + ", pinned in " + pinned, ""},
		{"genuine, the bundle's own key", noPin, []string{good}, 3, "INTACT, ORIGIN NOT PROVEN", originNotProven(archive)},
		{"second manifest, key file", noPin, []string{second, "--pubkey", keyFile}, 1,
			"FAILED: format: seal/manifest.json: appears twice", "nokstream: the bundle did not verify\n"},
		{"second manifest, the bundle's own key", noPin, []string{second}, 1,
			"FAILED: format: seal/manifest.json: appears twice", "nokstream: the bundle did not verify\n"},
		{"signed whole by a forger, pinned key", pinned, []string{resigned}, 1,
			"FAILED: key: seal/manifest.json: signed by key " + seal.KeyID(forger.Public().(ed25519.PublicKey)), "nokstream: the bundle did not verify\n"},
		{"signed whole by a forger, the bundle's own key", noPin, []string{resigned}, 3, "INTACT, ORIGIN NOT PROVEN", originNotProven(forger)},
		{"genuine, a pinned file that is no key", badPin, []string{good}, 1, "",
			"nokstream: the pinned key " + filepath.Join(badPin, "nokstream", "seal.pub") + ": public key: want PEM, or the base64 or hex of 32 bytes\n"},
		{"key over plain http", noPin, []string{good, "--pubkey", "http://" + strings.TrimPrefix(srv.URL, "https://")}, 1, "",
			"nokstream: --pubkey: key URL \"http://" + strings.TrimPrefix(srv.URL, "https://") + "\": want https://host/api/v1/keys/seal\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runVerify(t, tc.configDir, srv.Client(), tc.args...)
			if r.status != tc.status || !strings.Contains(r.stdout, tc.stdout) || r.stderr != tc.stderr {
				t.Errorf("exit %d, stdout:\n%s\nstderr: %q\nwant exit %d, %q in stdout, stderr %q", r.status, r.stdout, r.stderr,
					tc.status, tc.stdout, tc.stderr)
			}
			// A forger's key inside the bundle verifies as well as the
			// archive's: nothing may read as OK then.
			if tc.status == 3 && strings.Contains(r.stdout, "OK:") {
				t.Errorf("checked with the bundle's own key, the report says OK:\n%s", r.stdout)
			}
		})
	}
	for _, f := range forgeries {
		t.Run("forgery/"+f.Name, func(t *testing.T) {
			if r := runVerify(t, pinned, srv.Client(), forged[f.Name]); r.status != 1 ||
				!strings.Contains(r.stdout, "FAILED: "+f.Kind+": "+f.File+": ") {
				t.Errorf("exit %d, stdout:\n%s\nwant 1, naming %s", r.status, r.stdout, f.File)
			}
		})
	}
}

// TestVerifyEscapes: what the report echoes from a bundle cannot drive the
// terminal: control characters, bidirectional overrides and bytes that are
// not UTF-8 are shown escaped, in every field; Cyrillic is shown as it is.
func TestVerifyEscapes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	keyFile := write(t, dir, "seal.pub", seal.MarshalPublicKey(key.Public().(ed25519.PublicKey)))
	b, err := bundletest.Small(filepath.Join(dir, "store"), "c1", "апелляция\x1b]0;pwned\x07\u202e\r\nOK: forged", key)
	if err != nil {
		t.Fatal(err)
	}
	files, err := bundletest.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	extra := files[0]
	extra.Header.Name = "evidence-e1-c1/\x1b[2J\xff\u2028.txt"
	extra.Data = []byte("x")
	extra.Header.Format = tar.FormatGNU
	b, err = bundletest.Write(append(files, extra))
	if err != nil {
		t.Fatal(err)
	}
	r := runVerify(t, t.TempDir(), http.DefaultClient, write(t, dir, "b.tar", b), "--pubkey", keyFile)
	if r.status != 1 {
		t.Fatalf("exit %d, want 1 for the extra file: %s", r.status, r.stdout)
	}
	for _, want := range []string{
		`purpose: апелляция\x1b]0;pwned\x07\u202e\r\nOK: forged`,
		`FAILED: extra: \x1b[2J\xff\u2028.txt: not part of an evidence bundle`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the report does not have %q:\n%s", want, r.stdout)
		}
	}
	for i, c := range r.stdout {
		if (c < 0x20 && c != '\n') || c == 0x7f || c == 0x202e || c == 0x2028 || c == 0xfffd {
			t.Errorf("the report has %U at %d:\n%q", c, i, r.stdout)
		}
	}
}

func TestEsc(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"e1":               "e1",
		"Иванов И.И.":      "Иванов И.И.",
		"a\\x1b":           `a\\x1b`,
		"\x00\x1b\x7f\x85": `\x00\x1b\x7f\x85`,
		"\u0085\u200b":     `\u0085\u200b`,
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestVerifyReportsSealVersion: the report says which version of the seal
// the bundle holds and when it was sealed (an older version lists less, and
// verifies as well: only the archive knows its latest), and an OK that comes
// with warnings the seal declares says so on the OK line.
func TestVerifyReportsSealVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	keyFile := write(t, dir, "seal.pub", seal.MarshalPublicKey(key.Public().(ed25519.PublicKey)))
	store := filepath.Join(dir, "store")
	small, err := bundletest.Small(store, "c1", "appeal 12", key)
	if err != nil {
		t.Fatal(err)
	}
	r := runVerify(t, t.TempDir(), http.DefaultClient, write(t, dir, "b.tar", small), "--pubkey", keyFile)
	if r.status != 0 || !strings.Contains(r.stdout, "  seal version 1, sealed 2026-03-02 10:00:00Z, naming 0 earlier versions") ||
		!strings.Contains(r.stdout, "\nOK: every hash, chain, the Merkle root and the signatures verify\n") {
		t.Errorf("exit %d:\n%s", r.status, r.stdout)
	}

	// Version 2 of the seal, declaring a problem of its own.
	files, err := bundletest.Read(small)
	if err != nil {
		t.Fatal(err)
	}
	var m *seal.Manifest
	for _, f := range files {
		if strings.HasSuffix(f.Header.Name, "/seal/manifest.json") {
			if m, err = seal.Parse(f.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.Previous = []seal.Previous{{Version: 1, MerkleRoot: m.MerkleRoot, SealedAt: m.SealedAt}}
	m.Version, m.SealedAt = 2, m.SealedAt.Add(24*time.Hour)
	m.Problems = []seal.Problem{{Key: m.Entries[1].Key, Detail: "the stored bytes did not match ingest's announcement on arrival"}}
	manifest, sig, err := seal.Seal(m, key)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := blob.NewDir(store)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := bundle.Write(context.Background(), &b, objs, bundle.Request{Purpose: "appeal 12", ExportedBy: "council1",
		ExportedAt: m.SealedAt.Add(time.Hour), Manifest: manifest, Signature: sig, Timeline: map[string]any{}, Audit: []any{}, Key: key}); err != nil {
		t.Fatal(err)
	}
	r = runVerify(t, t.TempDir(), http.DefaultClient, write(t, dir, "v2.tar", b.Bytes()), "--pubkey", keyFile)
	for _, want := range []string{
		"  seal version 2, sealed 2026-03-03 10:00:00Z, naming 1 earlier versions",
		"  warning: " + m.Entries[1].Key + ": the stored bytes did not match ingest's announcement on arrival (declared by the seal)\n",
		"\nOK: every hash, chain, the Merkle root and the signatures verify, with warnings (1, above): breaks and problems the seal or the export declares",
	} {
		if r.status != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("exit %d, want %q in:\n%s", r.status, want, r.stdout)
		}
	}
}
