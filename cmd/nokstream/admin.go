package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/internal/secrets"
	"github.com/nokstream/nokstream/registry/store"
)

func migrateCommand(_ *globalFlags) *cobra.Command {
	var d deps
	var role, passwordFile, archiverRole, archiverPasswordFile string
	cmd := &cobra.Command{
		Use:   "migrate --db OWNER_URL [--runtime-role ROLE] [--archiver-role ROLE]",
		Short: "Apply the database migrations as the owner, and grant the services' runtime role (idempotent)",
		Long: `Apply the database migrations (idempotent), connected as the owner of the
schema (--db). With --runtime-role, then let that role run the services:
it is created (LOGIN, with the password in --runtime-password-file) if it
does not exist, and may read and write rows and append to the audit log,
but not change or remove audit rows, alter tables or disable triggers.
Run the services with --db pointing at the runtime role.
With --archiver-role, the archiver gets a role of its own: rows in the
archiver's schema and nothing in the registry's; the runtime role then
gets nothing in the archiver's schema. Run the archiver with --db pointing
at the archiver's role.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.requireDB(); err != nil {
				return err
			}
			if err := migrateAll(cmd.Context(), d.db); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintln(os.Stderr, "database is up to date")
			if role != "" {
				password, err := optionalSecret(passwordFile, "--runtime-password-file")
				if err != nil {
					return err
				}
				if err := store.GrantRuntime(cmd.Context(), d.db, role, password); err != nil {
					return fmt.Errorf("migrate: %w", err)
				}
				if archiverRole == "" {
					if err := astore.GrantRuntime(cmd.Context(), d.db, role); err != nil {
						return fmt.Errorf("migrate: %w", err)
					}
				}
				fmt.Fprintf(os.Stderr, "runtime role %s may run the services (not change the audit log or the schema)\n", role)
			}
			if archiverRole != "" {
				password, err := optionalSecret(archiverPasswordFile, "--archiver-password-file")
				if err != nil {
					return err
				}
				if err := astore.GrantArchiver(cmd.Context(), d.db, archiverRole, password, role); err != nil {
					return fmt.Errorf("migrate: %w", err)
				}
				fmt.Fprintf(os.Stderr, "archiver role %s may run the archiver on its own schema only\n", archiverRole)
			}
			return nil
		},
	}
	d.dbFlag(cmd)
	cmd.Flags().StringVar(&role, "runtime-role", os.Getenv("NOKSTREAM_RUNTIME_ROLE"),
		"database role the services run as, granted what they need and no more (env NOKSTREAM_RUNTIME_ROLE)")
	cmd.Flags().StringVar(&passwordFile, "runtime-password-file", "",
		"file holding the runtime role's password (its first line), set when the role is created or given")
	cmd.Flags().StringVar(&archiverRole, "archiver-role", os.Getenv("NOKSTREAM_ARCHIVER_ROLE"),
		"database role of the archiver alone: its own schema, nothing of the registry's (env NOKSTREAM_ARCHIVER_ROLE)")
	cmd.Flags().StringVar(&archiverPasswordFile, "archiver-password-file", "",
		"file holding the archiver role's password (its first line), set when the role is created or given")
	return cmd
}

func indexCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "index", Short: "Maintain the registry's segment index"}
	var d deps
	var grace time.Duration
	compact := &cobra.Command{
		Use:   "compact --db OWNER_URL [--grace 168h]",
		Short: "Rebuild the segment index of each month ended more than --grace ago, once, as the schema's owner",
		Long: `Rebuild the covering index of each monthly partition of the segment index
that ended more than --grace ago and was not rebuilt before, oldest first.
Footage from every stream at once leaves a month's index half full and
scattered; rebuilt, each stream's entries are dense and in order, so an
exam's media reads fewer pages. Reads and writes go on during a rebuild
(REINDEX CONCURRENTLY). It needs free disk for the new index beside the old
one, up to the old one's size; a rebuild that fails leaves the old index as
it was. Run it as the schema's owner (--db as for nokstream migrate), from a
timer once a month or so; only one runs at a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.requireDB(); err != nil {
				return err
			}
			if err := migrateAll(cmd.Context(), d.db); err != nil {
				return fmt.Errorf("index compact: %w", err)
			}
			done, err := store.CompactSegmentIndex(cmd.Context(), d.db, time.Now(), grace, func(p store.CompactedPartition) {
				if p.Took == 0 {
					fmt.Fprintf(os.Stderr, "rebuilding %s (%d MB)…\n", p.Partition, p.BytesBefore>>20)
					return
				}
				fmt.Fprintf(os.Stderr, "rebuilt %s: %d rows, %d MB → %d MB in %v\n", p.Partition, p.Rows, p.BytesBefore>>20, p.BytesAfter>>20,
					p.Took.Round(time.Second))
			})
			if err != nil {
				return err
			}
			if len(done) == 0 {
				fmt.Fprintln(os.Stderr, "nothing to rebuild: every month ended more than --grace ago is rebuilt already")
			}
			return nil
		},
	}
	d.dbFlag(compact)
	compact.Flags().DurationVar(&grace, "grace", store.CompactionGrace,
		"how long after a month ends its footage may still arrive (a site's spool uploading late) before it is rebuilt")
	cmd.AddCommand(compact)
	return cmd
}

// optionalSecret reads the secret in file (its first line), or "" when no
// file is named; flag names it in errors.
func optionalSecret(file, flag string) (string, error) {
	if file == "" {
		return "", nil
	}
	p, err := readSecretFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	return p, nil
}

func deviceCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Manage the devices that publish streams"}
	var d deps
	var kind, host, pull, secretsKey, whipURL string
	var rotate bool
	add := &cobra.Command{
		Use:   "add <site>/<device>",
		Short: "Register a device of an existing site and print its publish URL with a new secret",
		Long: `Register a device of an existing site and print its publish URL with a new secret.

The URL (rtsp://<device>:<secret>@HOST:PORT/<site>/<device>) is printed once on
standard output; the registry keeps only a hash of the secret. With --rotate,
an existing device gets a new secret and the old one stops working. For a
webcam or screen, the WHIP endpoint and its bearer token (the same secret) are
printed on standard error: browsers and OBS publish those over WHIP.

With --pull rtsp://user:pass@camera/stream the device is a camera that only
serves: ingest pulls it (new devices are picked up within --pull-refresh). The
camera URL is stored sealed with AES-256-GCM under the key in --secrets-key
(default <data>/keys/secrets.key, created if missing), which every ingest must
also read; it is never printed or logged with its password. Giving --pull for
an existing device replaces its camera URL. Give --pull - to read the URL from the
first line of standard input instead, so that its password shows in no command
line (ps) and no shell history:

  nokstream device add site1/room2 --kind room --pull - < /run/secrets/room2.url`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			site, device, ok := strings.Cut(args[0], "/")
			if !ok || !store.ValidName(site) || !store.ValidName(device) {
				return fmt.Errorf("%q is not <site>/<device>: use lowercase letters, digits, '-' and '_'", args[0])
			}
			var sealed []byte
			if pull == "-" {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("--pull -: read the camera URL from standard input: %w", err)
				}
				if pull = strings.TrimSpace(line); pull == "" {
					return errors.New("--pull -: standard input holds no camera URL")
				}
			}
			if pull != "" {
				u, err := url.Parse(pull)
				if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
					return fmt.Errorf("--pull %s: want rtsp://[user:pass@]host[:port]/path or rtsps://…", rtsp.RedactURL(pull))
				}
				key, err := secrets.LoadOrCreateKey(secretsKeyPath(secretsKey, d.data))
				if err != nil {
					return err
				}
				if sealed, err = key.Seal([]byte(pull), []byte(site+"/"+device)); err != nil {
					return err
				}
			}
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			if sealed != nil {
				_, err := st.AddDevice(cmd.Context(), site, device, kind)
				if err != nil && !errors.Is(err, store.ErrExists) {
					return err
				}
				if err := st.SetDevicePull(cmd.Context(), site, device, sealed); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "device %s/%s (%s) registered; ingest pulls %s\n", site, device, kind, rtsp.RedactURL(pull))
				return nil
			}
			secret, err := st.AddDevice(cmd.Context(), site, device, kind)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no site %s: create it first with 'nokstream org add site %s --center <center>'", site, site)
			}
			if errors.Is(err, store.ErrExists) {
				if !rotate {
					return fmt.Errorf("device %s/%s exists: add --rotate to give it a new secret", site, device)
				}
				secret, err = st.RotateDeviceSecret(cmd.Context(), site, device)
			}
			if err != nil {
				return err
			}
			if err := auditCLI(cmd.Context(), st, "device.add", site+"/"+device, map[string]any{"kind": kind, "rotate": rotate}); err != nil {
				return err
			}
			fmt.Printf("rtsp://%s:%s@%s/%s/%s\n", device, secret, host, site, device)
			fmt.Fprintf(os.Stderr, "device %s/%s (%s) registered; keep the URL above secret: it is not shown again\n", site, device, kind)
			if kind == "webcam" || kind == "screen" {
				// Browsers and OBS publish these over WHIP; the secret is
				// the bearer token.
				fmt.Fprintf(os.Stderr, "WHIP: POST %s/whip/%s/%s with \"Authorization: Bearer %s\" (OBS: Service WHIP, Bearer Token)\n",
					strings.TrimRight(whipURL, "/"), site, device, secret)
			}
			return nil
		},
	}
	d.dbFlag(add)
	d.dataFlag(add)
	add.Flags().StringVar(&pull, "pull", "", "camera URL that ingest pulls (rtsp://user:pass@camera/stream), stored encrypted; - reads it from standard input")
	add.Flags().StringVar(&secretsKey, "secrets-key", "", "file with the key that seals camera URLs (default: <data>/keys/secrets.key, created if missing)")
	add.Flags().StringVar(&kind, "kind", "room", "what the device records: room, webcam or screen")
	add.Flags().StringVar(&host, "host", "localhost:8554", "host:port of the ingest RTSP server, for the printed URL")
	add.Flags().BoolVar(&rotate, "rotate", false, "give an existing device a new secret")
	add.Flags().StringVar(&whipURL, "whip-url", "http://localhost:8080", "base URL of the HTTP server that serves /whip/ (all, ingest: --http-addr), for the WHIP endpoint printed for webcam and screen devices")
	cmd.AddCommand(add)
	return cmd
}

func userCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage staff users"}
	var d deps
	var role, org string
	var orgAdmin bool
	add := &cobra.Command{
		Use:   "add --role ROLE [--org ID] [--admin] <login>",
		Short: "Create a user and print a temporary password",
		Long: `Create a user and print a temporary password on standard output.

The user must change it at first login (POST /api/v1/auth/password).
Roles: nark, council, center, site, expert. A council, center or site user
names the organisation they belong to with --org; an expert may name a
council or center; a NARK operator none. --admin makes a council, center
or site user the admin of their organisation's accounts: they list them and
disable or enable them (GET /api/v1/users, POST /api/v1/users/{login}/suspension).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			pw, err := st.AddUser(cmd.Context(), args[0], role, org)
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("user %s exists", args[0])
			}
			if err != nil {
				return err
			}
			if orgAdmin {
				if err := st.SetOrgAdmin(cmd.Context(), args[0], true); err != nil {
					return err
				}
			}
			if err := auditCLI(cmd.Context(), st, "user.add", args[0], map[string]any{"role": role, "org": org, "org_admin": orgAdmin}); err != nil {
				return err
			}
			fmt.Println(pw)
			fmt.Fprintf(os.Stderr, "user %s (%s) created; the temporary password above must be changed at first login\n", args[0], role)
			return nil
		},
	}
	d.dbFlag(add)
	add.Flags().StringVar(&role, "role", "", "role: nark, council, center, site, expert (required)")
	add.Flags().StringVar(&org, "org", "", "organisation: the council, center or site of the user (none for nark; optional for expert)")
	add.Flags().BoolVar(&orgAdmin, "admin", false, "the user manages the accounts of their organisation (council, center or site users)")
	_ = add.MarkFlagRequired("role")
	var rd deps
	reset := &cobra.Command{
		Use:   "reset <login>",
		Short: "Give a user a new temporary password (printed) and end their sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := rd.openStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer st.Close()
			pw, err := st.ResetPassword(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no user %s: create it with 'nokstream user add'", args[0])
			}
			if err != nil {
				return err
			}
			if err := auditCLI(cmd.Context(), st, "user.reset", args[0], nil); err != nil {
				return err
			}
			fmt.Println(pw)
			fmt.Fprintf(os.Stderr, "user %s has a new temporary password (above); it must be changed at the next login\n", args[0])
			return nil
		},
	}
	rd.dbFlag(reset)
	cmd.AddCommand(add, reset, userDisableCommand(true), userDisableCommand(false))
	return cmd
}

// userDisableCommand returns `user disable` (or `user enable`): disabling a
// user ends their sessions and the signed links those made.
func userDisableCommand(disable bool) *cobra.Command {
	var d deps
	use, short, action := "enable <login>", "Let a disabled user log in again", "user.enable"
	if disable {
		use, short, action = "disable <login>", "Stop a user from logging in, and end their sessions and signed links", "user.disable"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := d.openStore(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.SetUserDisabled(cmd.Context(), args[0], disable)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no user %s", args[0])
			}
			if err != nil {
				return err
			}
			return auditCLI(cmd.Context(), st, action, args[0], nil)
		},
	}
	d.dbFlag(cmd)
	return cmd
}
