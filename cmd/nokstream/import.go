package main

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/registry/bootstrap"
)

func importCommand(_ *globalFlags) *cobra.Command {
	var d deps
	var host string
	cmd := &cobra.Command{
		Use:   "import <file.json>",
		Short: "Stand up councils, centers, sites, devices, users, candidates and exams from a JSON file",
		Long: `Stand up councils, qualifications, centers, sites with their devices, staff
users, candidates and exams from a JSON file, without the API (the format is in
README.md). Importing again is safe: what exists is updated or left alone.

For each new device its publish URL, and for each new user a temporary
password, is printed once on standard output:
  device <site>/<device> rtsp://<device>:<secret>@HOST/<site>/<device>
  user <login> <temporary password>`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			fh, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open import file: %w", err)
			}
			defer fh.Close()
			f, err := bootstrap.Decode(fh)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			st, err := d.openStore(ctx, true)
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := bootstrap.Apply(ctx, st, f, time.Now())
			if r != nil {
				if aerr := auditCLI(ctx, st, "import", args[0], map[string]any{"created": r.Created, "updated": r.Updated}); aerr != nil && err == nil {
					err = aerr
				}
				streams := make([]string, 0, len(r.DeviceSecrets))
				for s := range r.DeviceSecrets {
					streams = append(streams, s)
				}
				sort.Strings(streams)
				for _, s := range streams {
					site, device := splitStream(s)
					fmt.Printf("device %s rtsp://%s:%s@%s/%s/%s\n", s, device, r.DeviceSecrets[s], host, site, device)
				}
				logins := make([]string, 0, len(r.Passwords))
				for l := range r.Passwords {
					logins = append(logins, l)
				}
				sort.Strings(logins)
				for _, l := range logins {
					fmt.Printf("user %s %s\n", l, r.Passwords[l])
				}
				fmt.Fprintf(os.Stderr, "import: %d created, %d updated\n", len(r.Created), len(r.Updated))
			}
			return err
		},
	}
	d.dbFlag(cmd)
	cmd.Flags().StringVar(&host, "host", "localhost:8554", "host:port of the ingest RTSP server, for the printed device URLs")
	return cmd
}

func splitStream(s string) (site, device string) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}
