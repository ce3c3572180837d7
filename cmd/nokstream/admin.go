package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/registry/store"
)

func migrateCommand(_ *globalFlags) *cobra.Command {
	var d deps
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.requireDB(); err != nil {
				return err
			}
			if err := store.Migrate(cmd.Context(), d.db); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			fmt.Fprintln(os.Stderr, "database is up to date")
			return nil
		},
	}
	d.dbFlag(cmd)
	return cmd
}

func deviceCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "Manage the devices that publish streams"}
	var d deps
	var kind, host string
	var rotate bool
	add := &cobra.Command{
		Use:   "add <site>/<device>",
		Short: "Register a device and print its publish URL with a new secret",
		Long: `Register a device and print its publish URL with a new secret.

The URL (rtsp://<device>:<secret>@HOST:PORT/<site>/<device>) is printed once on
standard output; the registry keeps only a hash of the secret. With --rotate,
an existing device gets a new secret and the old one stops working.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			site, device, ok := strings.Cut(args[0], "/")
			if !ok || !store.ValidName(site) || !store.ValidName(device) {
				return fmt.Errorf("%q is not <site>/<device>: use lowercase letters, digits, '-' and '_'", args[0])
			}
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			secret, err := st.AddDevice(cmd.Context(), site, device, kind)
			if errors.Is(err, store.ErrExists) {
				if !rotate {
					return fmt.Errorf("device %s/%s exists: add --rotate to give it a new secret", site, device)
				}
				secret, err = st.RotateDeviceSecret(cmd.Context(), site, device)
			}
			if err != nil {
				return err
			}
			fmt.Printf("rtsp://%s:%s@%s/%s/%s\n", device, secret, host, site, device)
			fmt.Fprintf(os.Stderr, "device %s/%s (%s) registered; keep the URL above secret: it is not shown again\n", site, device, kind)
			return nil
		},
	}
	d.dbFlag(add)
	add.Flags().StringVar(&kind, "kind", "room", "what the device records: room, webcam or screen")
	add.Flags().StringVar(&host, "host", "localhost:8554", "host:port of the ingest RTSP server, for the printed URL")
	add.Flags().BoolVar(&rotate, "rotate", false, "give an existing device a new secret")
	cmd.AddCommand(add)
	return cmd
}

func userCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage staff users"}
	var d deps
	var role, org string
	add := &cobra.Command{
		Use:   "add --role ROLE <login>",
		Short: "Create a user and print a temporary password",
		Long: `Create a user and print a temporary password on standard output.

The user must change it at first login (POST /api/v1/auth/password).
Roles: nark, council, center, site, expert.`,
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
			fmt.Println(pw)
			fmt.Fprintf(os.Stderr, "user %s (%s) created; the temporary password above must be changed at first login\n", args[0], role)
			return nil
		},
	}
	d.dbFlag(add)
	add.Flags().StringVar(&role, "role", "", "role: nark, council, center, site, expert (required)")
	add.Flags().StringVar(&org, "org", "", "organisation id (not for nark)")
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
			fmt.Println(pw)
			fmt.Fprintf(os.Stderr, "user %s has a new temporary password (above); it must be changed at the next login\n", args[0])
			return nil
		},
	}
	rd.dbFlag(reset)
	cmd.AddCommand(add, reset)
	return cmd
}
