package deploy

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestCompose loads deploy/docker/compose.yaml as `docker compose` does
// (schema validation, interpolation, merge of the x- anchors) and checks the
// scaled-out shape: Kafka in KRaft mode, MinIO, PostgreSQL, two of each
// nokstream service, a spool volume per ingest, and only real flags.
func TestCompose(t *testing.T) {
	dir := filepath.Join("docker")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnv(nil), cli.WithName("nokstream"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}

	for _, name := range []string{"postgres", "kafka", "minio", "migrate"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	kafka := p.Services["kafka"]
	if roles := value(kafka.Environment["KAFKA_PROCESS_ROLES"]); !strings.Contains(roles, "controller") {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES=%q: not KRaft", roles)
	}
	for k := range kafka.Environment {
		if strings.Contains(strings.ToLower(k), "zookeeper") {
			t.Errorf("kafka: %s: KRaft needs no ZooKeeper", k)
		}
	}

	instances := map[string]int{}
	spools := map[string]string{}
	for name, s := range p.Services {
		cmd := subcommand(s)
		if cmd == "" {
			continue
		}
		n := 1
		if s.Deploy != nil && s.Deploy.Replicas != nil {
			n = *s.Deploy.Replicas
		}
		instances[cmd] += n
		// A secret file the service reads must be granted to it.
		for _, text := range append(slices.Clone(s.Entrypoint), envValues(s.Environment)...) {
			for _, m := range runSecret.FindAllStringSubmatch(text, -1) {
				if !slices.ContainsFunc(s.Secrets, func(c types.ServiceSecretConfig) bool {
					return c.Source == m[1] && (c.Target == "" || c.Target == m[1] || c.Target == "/run/secrets/"+m[1])
				}) {
					t.Errorf("compose %s reads /run/secrets/%s, which is not among its secrets", name, m[1])
				}
			}
		}
		var names []string
		for k := range s.Environment {
			names = append(names, k)
		}
		checkEnv(t, "compose "+name, cmd, names)
		// Each service that holds a database runs as its own role: the
		// owner's URL is for migrate (and the node registration) alone, and
		// the archiver's role is not the registry's.
		var urls []string
		for _, c := range s.Secrets {
			if strings.HasPrefix(c.Source, "db_url") {
				urls = append(urls, c.Source)
			}
		}
		if want, ok := map[string]string{"archiver": "db_url_archiver", "registry": "db_url_registry"}[cmd]; ok && !slices.Equal(urls, []string{want}) {
			t.Errorf("compose %s is given the database URLs %v, want only %s (its own role)", name, urls, want)
		}
		if cmd == "migrate" {
			joined := strings.Join(s.Entrypoint, " ")
			for _, flag := range []string{"--runtime-role nokstream_app", "--archiver-role nokstream_archiver"} {
				if !strings.Contains(joined, flag) {
					t.Errorf("compose migrate does not make the services' roles: no %q in %q", flag, joined)
				}
			}
		}
		if cmd == "ingest" {
			// Ingest holds no database: the registry's node API, with a node
			// token that is a secret of its own.
			if slices.ContainsFunc(s.Secrets, func(c types.ServiceSecretConfig) bool { return strings.HasPrefix(c.Source, "db_url") }) {
				t.Errorf("compose %s is given a database URL: ingest holds no database", name)
			}
			if value(s.Environment["NOKSTREAM_REGISTRY"]) == "" || !strings.HasPrefix(value(s.Environment["NOKSTREAM_REGISTRY_TOKEN_FILE"]), "/run/secrets/") {
				t.Errorf("compose %s: no NOKSTREAM_REGISTRY, or its node token is not a secret file", name)
			}
			if n != 1 {
				t.Errorf("compose %s: %d replicas would share one spool", name, n)
			}
			data := value(s.Environment["NOKSTREAM_DATA"])
			if data == "" {
				data = "/var/lib/nokstream" // the image's NOKSTREAM_DATA
			}
			vol := ""
			for _, v := range s.Volumes {
				if v.Target == data && v.Type == types.VolumeTypeVolume {
					vol = v.Source
				}
			}
			if vol == "" {
				t.Errorf("compose %s: the spool %s is not on a named volume", name, data)
			} else if other, dup := spools[vol]; dup {
				t.Errorf("compose %s and %s share the spool volume %s", name, other, vol)
			}
			spools[vol] = name
			// RTSP over UDP and WHIP announce the ports ingest listens on, so a
			// UDP port must be published on the same number.
			for _, pc := range s.Ports {
				if pc.Protocol == "udp" && pc.Published != strconv.Itoa(int(pc.Target)) {
					t.Errorf("compose %s: UDP port %d published as %s: publishers would be told %d", name, pc.Target, pc.Published, pc.Target)
				}
			}
		}
	}
	for _, cmd := range []string{"ingest", "transcoder", "archiver", "registry"} {
		if instances[cmd] != 2 {
			t.Errorf("compose runs %d of %s, want 2", instances[cmd], cmd)
		}
	}
	if instances["migrate"] != 1 {
		t.Errorf("compose runs migrate %d times", instances["migrate"])
	}
}

var runSecret = regexp.MustCompile(`/run/secrets/([A-Za-z0-9_.-]+)`)

func envValues(env types.MappingWithEquals) []string {
	var vs []string
	for _, v := range env {
		vs = append(vs, value(v))
	}
	return vs
}

var execNokstream = regexp.MustCompile(`\bnokstream ([a-z]+)\b`)

// subcommand returns the nokstream subcommand a compose service runs, or ""
// when it does not run the nokstream image.
func subcommand(s types.ServiceConfig) string {
	if s.Image != "nokstream:latest" {
		return ""
	}
	// An entrypoint of `sh -c '… exec nokstream <cmd>'`, or the image's
	// entrypoint with the subcommand as the command.
	for _, e := range s.Entrypoint {
		if m := execNokstream.FindStringSubmatch(e); m != nil {
			return m[1]
		}
	}
	if len(s.Command) > 0 {
		return s.Command[0]
	}
	return "all"
}

func value(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
