package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/registry/api"
)

func linkCommand(g *globalFlags) *cobra.Command {
	var d deps
	var login, keyPath, base string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "link --login L <path>",
		Short: "Print a signed, time-limited URL for a playlist or media path",
		Long: `Print a signed, time-limited URL that lets a player (ffplay, VLC, hls.js)
fetch a playlist or media path as the given user, without a token.

Example: nokstream link --login demo /api/v1/streams/site1/cam1/playlist.m3u8
The access is checked and audited as that user when the URL is used.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.HasPrefix(args[0], "/api/v1/streams/") && !strings.HasPrefix(args[0], "/api/v1/media/") {
				return fmt.Errorf("path %q: give a path under /api/v1/streams/ or /api/v1/media/", args[0])
			}
			ctx := cmd.Context()
			st, err := d.openStore(ctx, false)
			if err != nil {
				return err
			}
			defer st.Close()
			u, err := st.UserByLogin(ctx, login)
			if err != nil {
				return fmt.Errorf("user %q: %w (create one with 'nokstream user add')", login, err)
			}
			if keyPath == "" {
				keyPath = filepath.Join(d.data, "keys", "signing.key")
			}
			key, err := signingKey(keyPath)
			if err != nil {
				return err
			}
			blobStore, _, err := d.openBlob(ctx)
			if err != nil {
				return err
			}
			cfg := api.DefaultConfig()
			cfg.SigningKey = key
			srv, err := api.New(cfg, api.Deps{Store: st, Blob: blobStore, Log: g.logger(), Registry: obs.NewRegistry(), Health: obs.NewHealth(), Now: time.Now})
			if err != nil {
				return err
			}
			if ttl <= 0 || ttl > api.MaxLinkTTL {
				return fmt.Errorf("--ttl %v: want a duration up to %v", ttl, api.MaxLinkTTL)
			}
			// The link is bound to a session of its own, which ends with
			// the user's password change or reset, or the user disabled.
			now := time.Now()
			token, _, err := st.CreateSession(ctx, u.ID, now, ttl)
			if err != nil {
				return err
			}
			_, sid, err := st.SessionByToken(ctx, token, now)
			if err != nil {
				return err
			}
			signed, err := srv.SignedURL(args[0], u.ID, sid, now.Add(ttl))
			if err != nil {
				return err
			}
			fmt.Println(strings.TrimRight(base, "/") + signed)
			return nil
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	cmd.Flags().StringVar(&login, "login", "", "user the link acts for (required)")
	cmd.Flags().StringVar(&keyPath, "signing-key", "", "signing key file of the registry (default: <data>/keys/signing.key)")
	cmd.Flags().StringVar(&base, "base", "http://localhost:8080", "base URL of the registry")
	cmd.Flags().DurationVar(&ttl, "ttl", 12*time.Hour, "how long the link works, at most 12h")
	_ = cmd.MarkFlagRequired("login")
	return cmd
}
