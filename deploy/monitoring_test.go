package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/nokstream/nokstream/internal/testenv"
)

const (
	alertsFile    = "monitoring/alerts.yaml"
	dashboardFile = "monitoring/grafana-nokstream.json"
)

// query is one PromQL expression of the rules or the dashboard.
type query struct {
	where string
	expr  string
}

// selector is a metric a query names, with the label names it matches on.
type selector struct {
	where  string
	metric string
	labels []string
}

var promql = parser.NewParser(parser.Options{})

// alertQueries parses the alert rules with Prometheus's own rule-file parser
// (strict YAML, every expr as PromQL, label and annotation templates).
func alertQueries(t *testing.T) ([]query, []rulefmt.Rule) {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	var qs []query
	var rules []rulefmt.Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: fmt.Sprintf("%s: %s", alertsFile, r.Alert+r.Record), expr: r.Expr})
			rules = append(rules, r)
		}
	}
	return qs, rules
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // of a collapsed row
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: no uid or title", dashboardFile)
	}
	var qs []query
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", dashboardFile, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				qs = append(qs, query{where: fmt.Sprintf("%s: %q %s", dashboardFile, p.Title, tg.RefID), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return qs
}

// selectors parses each query and returns the metrics it names.
func selectors(t *testing.T, qs []query) []selector {
	t.Helper()
	var out []selector
	for _, q := range qs {
		e, err := promql.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		n := len(out)
		parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			s := selector{where: q.where, metric: vs.Name}
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName {
					if m.Type != labels.MatchEqual {
						t.Errorf("%s: a metric name matched by pattern (%s) cannot be checked", q.where, m)
					}
					s.metric = m.Value
					continue
				}
				s.labels = append(s.labels, m.Name)
			}
			out = append(out, s)
			return nil
		})
		if len(out) == n {
			t.Errorf("%s: names no metric", q.where)
		}
	}
	return out
}

// TestAlertRules checks the rules parse, and that the alerts the operators
// asked for are there, each with a severity and a summary.
func TestAlertRules(t *testing.T) {
	qs, rules := alertQueries(t)
	selectors(t, qs)
	want := map[string]string{ // what must be alerted on → a metric its rule reads
		"a stream silent in an exam window": "nokstream_ingest_streams_active",
		"stream gaps in an exam window":     "nokstream_ingest_gap_seconds_total",
		"spool above 80%":                   "nokstream_ingest_spool_quota_ratio",
		"upload backlog growing":            "nokstream_ingest_spool_backlog_bytes",
		"bus backlog growing":               "nokstream_bus_published_total",
		"DLQ messages":                      "nokstream_bus_handled_total",
		"overdue evidence":                  "nokstream_archiver_overdue_evidence",
		"a consumer group lagging":          "nokstream_transcoder_lag_seconds",
	}
	for what, metric := range want {
		if !slices.ContainsFunc(rules, func(r rulefmt.Rule) bool { return strings.Contains(r.Expr, metric) }) {
			t.Errorf("no alert on %s (%s)", what, metric)
		}
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
			t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: no summary or description", r.Alert)
		}
	}
}

// TestDashboard checks every query of the Grafana dashboard parses.
func TestDashboard(t *testing.T) {
	if n := len(selectors(t, dashboardQueries(t))); n == 0 {
		t.Error("the dashboard names no metric")
	}
}

// Metrics the rules or the dashboard name that a freshly started
// `nokstream all` does not show, because they are counter or histogram
// vectors whose children appear only after the event they count (a segment
// transcoded, a message dead-lettered, a login refused…). For these the test
// checks that the name is registered in the Go source instead.
// nokstream_registry_outbox_events_total usually shows (the outbox relay's
// first round adds 0 to it), but only once that round has run.
var registeredOnly = []string{
	"nokstream_archiver_chain_breaks_total",
	"nokstream_archiver_retention_changes_total",
	"nokstream_archiver_retention_errors_total",
	"nokstream_archiver_segments_checked_total",
	"nokstream_archiver_sweeper_objects_total",
	"nokstream_bus_handle_seconds",
	"nokstream_bus_handled_total",
	"nokstream_bus_publish_errors_total",
	"nokstream_bus_published_total",
	"nokstream_ingest_media_errors_total",
	"nokstream_ingest_publishers_refused_total",
	"nokstream_ingest_registry_requests_total", // ingest on --registry only, never in `nokstream all`
	"nokstream_ingest_ship_errors_total",
	"nokstream_ingest_streams_active",
	"nokstream_registry_http_request_seconds",
	"nokstream_registry_http_requests_total",
	"nokstream_registry_login_refusals_total",
	"nokstream_registry_node_auth_failures_total",
	"nokstream_registry_outbox_events_total",
	"nokstream_transcoder_observations_total",
	"nokstream_transcoder_segments_total",
}

// notExported are series Prometheus makes itself, not a service.
var notExported = []string{"up"}

// TestMetricsExported starts `nokstream all` on a private PostgreSQL
// database, scrapes /metrics on its admin address, and checks that every
// metric an alert rule or the dashboard names is exported, and that every
// label a query matches on is a label of that metric.
func TestMetricsExported(t *testing.T) {
	rules, _ := alertQueries(t)
	sels := selectors(t, append(rules, dashboardQueries(t)...))
	families := scrapeAll(t)

	source := goSource(t)
	used := map[string]bool{}
	for _, s := range sels {
		name := s.metric
		used[name] = true
		if slices.Contains(notExported, name) {
			continue
		}
		f, ok := families[name]
		if !ok {
			// A histogram's or summary's series carry suffixes; its family does not.
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				base, cut := strings.CutSuffix(name, suffix)
				g, found := families[base]
				if !cut || !found {
					continue
				}
				switch typ := g.GetType(); {
				case suffix == "_bucket" && typ != dto.MetricType_HISTOGRAM,
					typ != dto.MetricType_HISTOGRAM && typ != dto.MetricType_SUMMARY:
					t.Errorf("%s: %s: %s is a %s, which has no %s series", s.where, name, base, typ, suffix)
				}
				f, ok = g, true
				break
			}
		}
		if !ok {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				base = strings.TrimSuffix(base, suffix)
			}
			switch {
			case !slices.Contains(registeredOnly, base):
				t.Errorf("%s: %s is not exported by nokstream all", s.where, name)
			case !strings.Contains(source, `"`+base+`"`):
				t.Errorf("%s: %s is registered nowhere in the Go source", s.where, base)
			}
			continue
		}
		// The labels a query matches on must be labels of the metric, or
		// ones Prometheus adds at scrape time.
		have := map[string]bool{"job": true, "instance": true, "le": f.GetType() == dto.MetricType_HISTOGRAM}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				have[l.GetName()] = true
			}
		}
		for _, l := range s.labels {
			if !have[l] {
				t.Errorf("%s: %s has no label %q", s.where, name, l)
			}
		}
	}
	for _, name := range registeredOnly {
		if !used[name] && !used[name+"_bucket"] {
			t.Errorf("registeredOnly lists %s, which no rule or panel uses", name)
		}
		if _, ok := families[name]; ok {
			// Not an error: a vector may get its first child during start-up.
			t.Logf("registeredOnly lists %s, which this scrape did export", name)
		}
	}
}

// scrapeAll starts `nokstream all` and returns what its admin address
// exports, by metric family.
func scrapeAll(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	bin := nokstreamBinary(t)
	dsn := testenv.Postgres(t)
	// Every address on port 0: the service writes the ports it was given
	// to --addr-file once its listeners are open.
	addrFile := filepath.Join(t.TempDir(), "addrs.json")
	cmd := exec.Command(bin, "all",
		"--db", dsn, "--data", t.TempDir(),
		"--http-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0",
		"--rtsp-addr", "127.0.0.1:0",
		"--rtp-addr", "", "--rtcp-addr", "",
		"--rtsps-addr", "127.0.0.1:0",
		"--webrtc-udp-addr", "127.0.0.1:0",
		"--addr-file", addrFile,
		"--log-level", "warn")
	cmd.Env = cleanEnv()
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	exited, err := testenv.Spawn(cmd)
	if err != nil {
		t.Fatalf("start nokstream all: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	var addrs map[string]string
	testenv.WaitFor(t, 90*time.Second, "nokstream all to write its addresses", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("nokstream all exited: %v\n%s", err, log.String())
		default:
		}
		b, err := os.ReadFile(addrFile)
		return err == nil && json.Unmarshal(b, &addrs) == nil
	})
	admin := addrs["admin"]
	var body string
	testenv.WaitFor(t, 90*time.Second, "nokstream all to be ready on "+admin, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("nokstream all exited: %v\n%s", err, log.String())
		default:
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		resp, err = http.Get("http://" + admin + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK
	})
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	if len(families) < 20 {
		t.Fatalf("/metrics has only %d families:\n%s", len(families), body)
	}
	return families
}

// cleanEnv is this process's environment without NOKSTREAM_* settings, so
// that a developer's own settings do not change what is tested.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NOKSTREAM_") {
			env = append(env, e)
		}
	}
	return env
}

// goSource returns the non-test Go source of the module, concatenated.
func goSource(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir("..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "var" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(&sb, bufio.NewReader(f))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}
