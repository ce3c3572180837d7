package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/nodeapi"
	"github.com/nokstream/nokstream/registry/store"
)

func nodeCommand(_ *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage the ingest nodes that may ask the registry's node API",
		Long: `Manage the ingest nodes that may ask the registry's node API.

An ingest node holds no database: it checks publishers and loads the cameras
to pull through the registry (nokstream ingest --registry URL), with the
token that "node add" prints. The registry keeps only the token's hash.`,
	}
	cmd.AddCommand(nodeAddCommand(), nodeListCommand(), nodeRevokeCommand())
	return cmd
}

func nodeAddCommand() *cobra.Command {
	var d deps
	var rotate bool
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Register an ingest node and print its token (the last word of standard output)",
		Long: `Register an ingest node and print its token on standard output.

Give the token to the node's ingest in --registry-token-file (a file readable
by it alone) or NOKSTREAM_REGISTRY_TOKEN, never on its command line. The token
is shown only here. With --rotate, a registered node gets a new token, the old
one stops working at once, and a revoked node is allowed again.

With --token-file, the token is the one in the file (made beforehand, e.g. by
deploy/docker/secrets.sh: "nkn.<name>." and 32 random bytes in unpadded
base64url) and nothing is printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !nodeapi.ValidNodeName(name) {
				return fmt.Errorf("%q is not a node name: use lowercase letters, digits, '-' and '_' (at most 63)", name)
			}
			token, err := nodeapi.NewToken(name)
			if err != nil {
				return err
			}
			if tokenFile != "" {
				if token, err = readSecretFile(tokenFile); err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				if n, ok := nodeapi.ParseToken(token); !ok || n != name {
					return fmt.Errorf("--token-file %s: not a token of node %s (want nkn.%s. and 32 random bytes in unpadded base64url)", tokenFile, name, name)
				}
			}
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.AddNode(cmd.Context(), name, nodeapi.HashToken(token))
			if errors.Is(err, store.ErrExists) {
				if !rotate {
					return fmt.Errorf("node %s exists: add --rotate to give it a new token (the old one stops working)", name)
				}
				err = st.RotateNode(cmd.Context(), name, nodeapi.HashToken(token))
			}
			if err != nil {
				return err
			}
			if err := auditCLI(cmd.Context(), st, "node.add", name, map[string]any{"rotate": rotate}); err != nil {
				return err
			}
			if tokenFile != "" {
				fmt.Fprintf(os.Stderr, "ingest node %s registered with the token in %s\n", name, tokenFile)
				return nil
			}
			fmt.Fprintf(os.Stderr, "ingest node %s registered; keep its token secret, it is not shown again\n", name)
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	d.dbFlag(cmd)
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "register the token in this file (its first line) instead of a new one, and print nothing")
	cmd.Flags().BoolVar(&rotate, "rotate", false, "give a registered node a new token (and allow it again if it was revoked)")
	return cmd
}

func nodeListCommand() *cobra.Command {
	var d deps
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the ingest nodes, when each last asked, and the refused node tokens of the last 24 hours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			nodes, err := st.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			since := time.Now().Add(-24 * time.Hour)
			failures, err := st.NodeAuthFailures(cmd.Context(), since)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tSTATE\tREGISTERED\tTOKEN ISSUED\tLAST SEEN\tFROM")
			for _, n := range nodes {
				state := "active"
				if n.Revoked() {
					state = "revoked " + n.RevokedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, state, n.CreatedAt.UTC().Format(time.RFC3339),
					n.RotatedAt.UTC().Format(time.RFC3339), orNever(n.LastSeen), n.LastAddr)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(nodes) == 0 {
				fmt.Fprintln(os.Stderr, "no ingest nodes: register one with `nokstream node add NAME`")
			}
			if len(failures) == 0 {
				return nil
			}
			// Summed per node and reason over the day.
			type key struct{ node, reason string }
			sum := map[key]*store.NodeAuthFailure{}
			var keys []key
			for _, f := range failures {
				k := key{f.Node, f.Reason}
				if sum[k] == nil {
					sum[k] = &store.NodeAuthFailure{Node: f.Node, Reason: f.Reason}
					keys = append(keys, k)
				}
				sum[k].Count += f.Count
				sum[k].Minute, sum[k].LastAddr = f.Minute, f.LastAddr
			}
			sort.Slice(keys, func(i, j int) bool {
				return keys[i].node < keys[j].node || (keys[i].node == keys[j].node && keys[i].reason < keys[j].reason)
			})
			fmt.Fprintln(out)
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REFUSED TOKENS (24 h)\tREASON\tCOUNT\tLAST\tLAST FROM")
			for _, k := range keys {
				f := sum[k]
				node := f.Node
				if node == "" {
					node = "(no registered node)"
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", node, f.Reason, f.Count, f.Minute.UTC().Format(time.RFC3339), f.LastAddr)
			}
			return w.Flush()
		},
	}
	d.dbFlag(cmd)
	return cmd
}

func orNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func nodeRevokeCommand() *cobra.Command {
	var d deps
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Refuse an ingest node's token from now on",
		Long: `Refuse an ingest node's token from now on.

The node's next request to the registry answers 401, and its ingest refuses
new publishers it cannot check (it does not fall back on what it cached).
"node add NAME --rotate" allows it again with a new token.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := d.openStore(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.RevokeNode(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no ingest node %s: `nokstream node list` shows the registered ones", args[0])
			}
			if err != nil {
				return err
			}
			if err := auditCLI(cmd.Context(), st, "node.revoke", args[0], nil); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "ingest node %s revoked: its token is refused from now on\n", args[0])
			return nil
		},
	}
	d.dbFlag(cmd)
	return cmd
}
