package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/internal/nodeapi"
	"github.com/nokstream/nokstream/internal/secrets"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// runNode runs `nokstream node ARGS` against dsn and returns its standard
// output.
func runNode(t *testing.T, dsn string, args ...string) (string, error) {
	t.Helper()
	cmd := nodeCommand(&globalFlags{})
	cmd.SetArgs(append(args, "--db", dsn))
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// lastWord is the last word of the last line of s: where `node add`
// prints the token.
func lastWord(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// registryReplica is one registry's node API behind a proxy that the test
// can take away (connections refused) and bring back.
type registryReplica struct {
	node  *api.NodeAPI
	proxy *testenv.TCPProxy
}

func (r registryReplica) url() string { return "http://" + r.proxy.Addr() }

// TestNodeAPI: an ingest node checks publishers and loads its cameras
// through the registry's node API with its node token, on the real
// database. Without a valid token (missing, wrong, malformed, another
// node's revoked one) every route answers 401 and tells nothing, and the
// refusals are audited in aggregate; the node fails over between two
// registries; while no registry answers, a device it has seen keeps
// publishing and one it has not is refused.
func TestNodeAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	storetest.Org(t, st, "council1", "center1", "site1")
	secret, err := st.AddDevice(ctx, "site1", "cam1", store.KindRoom)
	if err != nil {
		t.Fatal(err)
	}
	secret2, err := st.AddDevice(ctx, "site1", "cam2", store.KindRoom)
	if err != nil {
		t.Fatal(err)
	}
	key, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	const camera = "rtsp://admin:pw@10.0.0.9:554/live"
	sealed, err := key.Seal([]byte(camera), []byte("site1/room9"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDevice(ctx, "site1", "room9", store.KindRoom); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDevicePull(ctx, "site1", "room9", sealed); err != nil {
		t.Fatal(err)
	}

	// Two nodes; the second is revoked.
	out, err := runNode(t, dsn, "add", "edge1")
	if err != nil {
		t.Fatalf("node add: %v", err)
	}
	token := lastWord(out)
	if _, ok := nodeapi.ParseToken(token); !ok {
		t.Fatalf("node add printed %q: no token as its last word", out)
	}
	if _, err := runNode(t, dsn, "add", "edge1"); err == nil || !strings.Contains(err.Error(), "--rotate") {
		t.Errorf("adding a node twice: %v, want a refusal naming --rotate", err)
	}
	out, err = runNode(t, dsn, "add", "edge2")
	if err != nil {
		t.Fatal(err)
	}
	revoked := lastWord(out)
	if _, err := runNode(t, dsn, "revoke", "edge2"); err != nil {
		t.Fatalf("node revoke: %v", err)
	}
	if _, err := runNode(t, dsn, "revoke", "edge9"); err == nil || !strings.Contains(err.Error(), "node list") {
		t.Errorf("revoking an unknown node: %v, want an error pointing at node list", err)
	}

	// A token made beforehand (deploy/docker/secrets.sh) is registered as
	// it is, and printed nowhere; one of another node is refused.
	made, err := nodeapi.NewToken("edge3")
	if err != nil {
		t.Fatal(err)
	}
	madeFile := filepath.Join(t.TempDir(), "edge3.token")
	if err := os.WriteFile(madeFile, []byte(made+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runNode(t, dsn, "add", "edge3", "--token-file", madeFile); err != nil || strings.Contains(out, made) {
		t.Errorf("node add --token-file: %v, printed %q", err, out)
	}
	if _, err := runNode(t, dsn, "add", "edge4", "--token-file", madeFile); err == nil || !strings.Contains(err.Error(), "not a token of node edge4") {
		t.Errorf("node add edge4 with edge3's token: %v, want refused", err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var replicas []registryReplica
	for range 2 {
		n, err := api.NewNodeAPI(api.NodeDeps{Store: st, Log: log, Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(n.Handler())
		t.Cleanup(hs.Close)
		replicas = append(replicas, registryReplica{node: n, proxy: testenv.NewTCPProxy(t, hs.Listener.Addr().String())})
	}
	a, b := replicas[0], replicas[1]
	metrics := prometheus.NewRegistry()
	client := func(t *testing.T, token string, rs ...registryReplica) *access.Registry {
		t.Helper()
		var urls []string
		for _, r := range rs {
			urls = append(urls, r.url())
		}
		cfg := access.RegistryConfig{URLs: urls, Token: token, Timeout: 2 * time.Second}
		if len(rs) == 2 {
			cfg.Metrics = metrics // the failover test's client
		}
		c, err := access.NewRegistry(cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("node token required", func(t *testing.T) {
		wrong, err := nodeapi.NewToken("edge1")
		if err != nil {
			t.Fatal(err)
		}
		stranger, err := nodeapi.NewToken("edge7")
		if err != nil {
			t.Fatal(err)
		}
		bodies := map[string]string{
			nodeapi.PathPublisher: `{"site":"site1","device":"cam1","user":"cam1","secret":"` + secret + `"}`,
			nodeapi.PathCandidate: `{"site":"site1","device":"cam1","token":"x"}`,
		}
		for _, tc := range []struct{ name, auth string }{
			{"missing", ""}, {"malformed", "Bearer not-a-node-token"}, {"unknown", "Bearer " + stranger},
			{"wrong", "Bearer " + wrong}, {"revoked", "Bearer " + revoked}, {"basic", "Basic " + token},
		} {
			for _, path := range []string{nodeapi.PathPing, nodeapi.PathPublisher, nodeapi.PathCandidate, nodeapi.PathPulls} {
				method, body := http.MethodGet, ""
				if b, ok := bodies[path]; ok {
					method, body = http.MethodPost, b
				}
				req, _ := http.NewRequest(method, a.url()+path, strings.NewReader(body))
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s token, %s %s: %d, want 401", tc.name, method, path, resp.StatusCode)
				}
				if bytes.Contains(got, []byte("site1")) || bytes.Contains(got, []byte("room9")) || bytes.Contains(got, []byte("refused\"")) {
					t.Errorf("%s token, %s %s: the answer tells something: %s", tc.name, method, path, got)
				}
			}
		}
		// Through ingest's client and cache: refused, and nothing is
		// learned, not even from the cache after a refusal.
		for name, tok := range map[string]string{"wrong": wrong, "revoked": revoked} {
			c := access.NewCache(client(t, tok, a), time.Hour, time.Now)
			if _, err := c.CheckPublisher(ctx, "site1", "cam1", "cam1", secret); !errors.Is(err, access.ErrNodeRefused) {
				t.Errorf("%s token: check %v, want ErrNodeRefused", name, err)
			}
			if devs, err := client(t, tok, a).PullDevices(ctx); !errors.Is(err, access.ErrNodeRefused) || len(devs) != 0 {
				t.Errorf("%s token: pulls %v %v, want nothing and ErrNodeRefused", name, devs, err)
			}
		}
		// The audit counts the refusals: one row per minute, node and
		// reason, however many requests.
		if err := a.node.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := st.NodeAuthFailures(ctx, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, r := range rows {
			counts[r.Node+"/"+r.Reason] += r.Count
			if r.LastAddr != "127.0.0.1" {
				t.Errorf("audit row %+v: last address %q, want 127.0.0.1", r, r.LastAddr)
			}
		}
		want := map[string]int{"/missing": 8, "/malformed": 4, "/unknown": 4, "edge1/wrong": 6, "edge2/revoked": 6}
		for k, n := range want {
			if counts[k] != n {
				t.Errorf("audit: %d refusals %s, want %d (all: %v)", counts[k], k, n, counts)
			}
		}
		if len(rows) > len(want) {
			t.Errorf("audit has %d rows for %d kinds of refusal in one minute: not aggregated", len(rows), len(want))
		}
		// `node list` shows the nodes and the refusals.
		list, err := runNode(t, dsn, "list")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"edge1", "active", "edge2", "revoked", "(no registered node)", "wrong"} {
			if !strings.Contains(list, w) {
				t.Errorf("node list lacks %q:\n%s", w, list)
			}
		}
	})

	t.Run("checks", func(t *testing.T) {
		c := client(t, token, a)
		if err := c.Ping(ctx); err != nil {
			t.Errorf("ping: %v", err)
		}
		if err := client(t, made, b).Ping(ctx); err != nil {
			t.Errorf("ping with the token registered from a file: %v", err)
		}
		// --rotate allows a revoked node again with a new token; the old
		// one stays refused.
		out, err := runNode(t, dsn, "add", "edge2", "--rotate")
		if err != nil {
			t.Fatal(err)
		}
		if err := client(t, lastWord(out), b).Ping(ctx); err != nil {
			t.Errorf("ping with edge2's rotated token: %v", err)
		}
		if err := client(t, revoked, b).Ping(ctx); !errors.Is(err, access.ErrNodeRefused) {
			t.Errorf("ping with edge2's old token after the rotation: %v, want ErrNodeRefused", err)
		}
		p, err := c.CheckPublisher(ctx, "site1", "cam1", "cam1", secret)
		if err != nil || p != (access.Publisher{Site: "site1", Device: "cam1", Source: "room"}) {
			t.Errorf("right secret: %+v %v", p, err)
		}
		if _, err := c.CheckPublisher(ctx, "site1", "cam1", "cam1", "wrong"); !errors.Is(err, access.ErrBadCredentials) {
			t.Errorf("wrong secret: %v, want ErrBadCredentials", err)
		}
		if _, err := c.CheckPublisher(ctx, "site1", "cam8", "cam8", secret); !errors.Is(err, access.ErrUnknownStream) {
			t.Errorf("unknown device: %v, want ErrUnknownStream", err)
		}
		if _, err := c.CheckCandidate(ctx, "site1", "cam1", "no-such-exam-token"); !errors.Is(err, access.ErrBadCredentials) {
			t.Errorf("wrong exam token: %v, want ErrBadCredentials", err)
		}
		// The pulled camera arrives sealed, and ingest's key opens it.
		src := pullSource{list: c.PullDevices, key: key, log: log}
		devs, err := src.PullDevices(ctx)
		if err != nil || len(devs) != 1 || devs[0].URL != camera || devs[0].Device != "room9" {
			t.Errorf("pulled cameras %+v %v, want room9 at its URL", devs, err)
		}
		nodes, err := st.Nodes(ctx)
		if err != nil || len(nodes) != 3 || nodes[0].LastSeen.IsZero() || nodes[0].LastAddr != "127.0.0.1" {
			t.Errorf("nodes %+v %v: edge1 not seen from 127.0.0.1", nodes, err)
		}
	})

	t.Run("failover and cache", func(t *testing.T) {
		c := access.NewCache(client(t, token, a, b), time.Hour, time.Now)
		check := func(device, secret string) error {
			_, err := c.CheckPublisher(ctx, "site1", device, device, secret)
			return err
		}
		if err := check("cam1", secret); err != nil {
			t.Fatalf("both up: %v", err)
		}
		a.proxy.Stop()
		if err := check("cam1", secret); err != nil {
			t.Errorf("first registry down: %v, want the second to answer", err)
		}
		if err := check("cam1", "wrong"); !errors.Is(err, access.ErrBadCredentials) {
			t.Errorf("first registry down, wrong secret: %v, want the second's refusal", err)
		}
		if err := a.proxy.Start(); err != nil {
			t.Fatal(err)
		}
		b.proxy.Stop()
		if err := check("cam1", secret); err != nil {
			t.Errorf("second registry down: %v, want the first to answer", err)
		}
		// No registry: what the node learned stands in.
		a.proxy.Stop()
		if err := check("cam1", secret); err != nil {
			t.Errorf("no registry: a device seen before is refused: %v", err)
		}
		if err := check("cam2", secret2); err == nil || errors.Is(err, access.ErrBadCredentials) {
			t.Errorf("no registry: a device never seen: %v, want refused for the outage", err)
		}
		if err := check("cam1", "wrong"); err == nil {
			t.Error("no registry: a seen device with a wrong secret is admitted")
		}
		if err := a.proxy.Start(); err != nil {
			t.Fatal(err)
		}
		if err := check("cam2", secret2); err != nil {
			t.Errorf("registry back: %v", err)
		}
		// The operator sees the failovers and the outage.
		outcomes := map[string]float64{}
		mfs, err := metrics.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				outcomes[m.GetLabel()[0].GetValue()] += m.GetCounter().GetValue()
			}
		}
		if outcomes["failover"] < 2 || outcomes["unavailable"] < 3 || outcomes["answered"] < 2 {
			t.Errorf("nokstream_ingest_registry_requests_total by outcome %v: want failovers, answers and the outage counted", outcomes)
		}
	})
}

// TestIngestRefusesDatabase: ingest holds no database; it says so and what
// to give instead, whether the database comes as a flag or from the
// environment, and it refuses to start without a registry or a node token.
func TestIngestRefusesDatabase(t *testing.T) {
	token, err := nodeapi.NewToken("edge1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"flag", nil, []string{"--db", "postgres://registry/nokstream", "--registry", "http://r:8080"},
			[]string{"ingest holds no database", "--registry", "node add"}},
		{"environment", map[string]string{"NOKSTREAM_DB": "postgres://registry/nokstream"}, []string{"--registry", "http://r:8080"},
			[]string{"ingest holds no database", "NOKSTREAM_DB"}},
		{"no registry", nil, nil, []string{"--registry", "node add"}},
		{"no token", nil, []string{"--registry", "http://r:8080"}, []string{"no node token", "--registry-token-file", "NOKSTREAM_REGISTRY_TOKEN"}},
		{"bad url", map[string]string{"NOKSTREAM_REGISTRY_TOKEN": token}, []string{"--registry", "r:8080"}, []string{"--registry", "http[s]://host:port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"NOKSTREAM_DB", "NOKSTREAM_REGISTRY", "NOKSTREAM_REGISTRY_TOKEN", "NOKSTREAM_REGISTRY_TOKEN_FILE"} {
				t.Setenv(k, tc.env[k])
			}
			root := rootCommand()
			root.SetArgs(append([]string{"ingest", "--data", t.TempDir(), "--admin-addr", "127.0.0.1:0"}, tc.args...))
			root.SetOut(io.Discard)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := root.ExecuteContext(ctx)
			if err == nil {
				t.Fatal("ingest started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
