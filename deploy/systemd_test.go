package deploy

import (
	"bufio"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// unitFile reads a systemd unit or environment file into key → values,
// keyed "Section.Key" for units and by variable name for environment files.
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]") + "."
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s:%d: not KEY=VALUE: %s", path, n, line)
				continue
			}
			out[section+k] = append(out[section+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// unitSettings returns the environment a unit's service runs with: its
// environment file's, then its own Environment= lines over them.
func unitSettings(unit, env map[string][]string) map[string]string {
	settings := map[string]string{}
	for k, v := range env {
		settings[k] = v[len(v)-1]
	}
	for _, e := range unit["Service.Environment"] {
		k, v, _ := strings.Cut(e, "=")
		settings[k] = v
	}
	return settings
}

// loadedCredentials returns the names of the credentials a unit loads.
func loadedCredentials(unit map[string][]string) map[string]bool {
	loaded := map[string]bool{}
	for _, c := range unit["Service.LoadCredential"] {
		name, _, _ := strings.Cut(c, ":")
		loaded[name] = true
	}
	return loaded
}

var credentialRef = regexp.MustCompile(`%d/([A-Za-z0-9._-]+)`)

// TestSystemd checks the exam-site ingest unit and its environment file:
// the unit runs `nokstream ingest`, every NOKSTREAM_* setting in either is a
// flag of it, and every credential the settings point at is loaded.
func TestSystemd(t *testing.T) {
	unitPath := filepath.Join("systemd", "nokstream-ingest.service")
	envPath := filepath.Join("systemd", "ingest.env")
	unit := unitFile(t, unitPath)
	env := unitFile(t, envPath)

	exec := unit["Service.ExecStart"]
	if len(exec) != 1 || !strings.HasSuffix(strings.Fields(exec[0])[0], "/nokstream") || strings.Fields(exec[0])[1] != "ingest" {
		t.Errorf("%s: ExecStart=%v, want one `…/nokstream ingest`", unitPath, exec)
	}
	if got := unit["Service.EnvironmentFile"]; len(got) != 1 || filepath.Base(got[0]) != filepath.Base(envPath) {
		t.Errorf("%s: EnvironmentFile=%v, want …/%s", unitPath, got, filepath.Base(envPath))
	}
	if unit["Install.WantedBy"] == nil {
		t.Errorf("%s: no [Install] WantedBy", unitPath)
	}

	loaded := loadedCredentials(unit)
	settings := unitSettings(unit, env)
	for k, v := range settings {
		for _, m := range credentialRef.FindAllStringSubmatch(v, -1) {
			if !loaded[m[1]] {
				t.Errorf("%s: %s=%s, but no LoadCredential=%s", unitPath, k, v, m[1])
			}
		}
	}
	if settings["NOKSTREAM_DATA"] == "" || !strings.HasPrefix(settings["NOKSTREAM_DATA"], "/var/lib/") {
		t.Errorf("NOKSTREAM_DATA=%q: the spool belongs in the unit's StateDirectory under /var/lib", settings["NOKSTREAM_DATA"])
	} else if sd := unit["Service.StateDirectory"]; len(sd) != 1 || "/var/lib/"+sd[0] != settings["NOKSTREAM_DATA"] {
		t.Errorf("NOKSTREAM_DATA=%q is not the StateDirectory %v", settings["NOKSTREAM_DATA"], sd)
	}
	// An exam-site box holds no database: it asks the registries with its
	// node token, a credential.
	for _, k := range []string{"NOKSTREAM_DB", "PGPASSFILE", "PGPASSWORD"} {
		if _, ok := settings[k]; ok {
			t.Errorf("%s is set: ingest holds no database", k)
		}
	}
	if settings["NOKSTREAM_REGISTRY"] == "" || !strings.HasPrefix(settings["NOKSTREAM_REGISTRY_TOKEN_FILE"], "%d/") {
		t.Errorf("NOKSTREAM_REGISTRY=%q NOKSTREAM_REGISTRY_TOKEN_FILE=%q: want the registries and a node token credential",
			settings["NOKSTREAM_REGISTRY"], settings["NOKSTREAM_REGISTRY_TOKEN_FILE"])
	}
	checkEnv(t, envPath+" and "+unitPath, "ingest", keys(settings))
}

// TestSystemdIndexCompact checks the owner's monthly unit: a timer runs
// `nokstream index compact` once a month (and after a missed run), the
// settings are flags of that command, and the owner's password is in no
// URL or setting, only in a loaded credential libpq reads (PGPASSFILE).
func TestSystemdIndexCompact(t *testing.T) {
	unitPath := filepath.Join("systemd", "nokstream-index-compact.service")
	envPath := filepath.Join("systemd", "index-compact.env")
	unit := unitFile(t, unitPath)
	env := unitFile(t, envPath)
	timer := unitFile(t, filepath.Join("systemd", "nokstream-index-compact.timer"))
	if exec := unit["Service.ExecStart"]; len(exec) != 1 || !slices.Equal(strings.Fields(exec[0])[1:], []string{"index", "compact"}) {
		t.Errorf("%s: ExecStart=%v, want one `…/nokstream index compact`", unitPath, exec)
	}
	if got := unit["Service.Type"]; len(got) != 1 || got[0] != "oneshot" {
		t.Errorf("%s: Type=%v, want oneshot (a timer's job)", unitPath, got)
	}
	if len(timer["Timer.OnCalendar"]) != 1 || len(timer["Timer.Persistent"]) != 1 || timer["Timer.Persistent"][0] != "true" ||
		timer["Install.WantedBy"] == nil {
		t.Errorf("the timer: %v, want one OnCalendar, Persistent=true and an [Install]", timer)
	}
	settings := unitSettings(unit, env)
	u, err := url.Parse(settings["NOKSTREAM_DB"])
	if err != nil || u.Scheme != "postgres" || u.User == nil {
		t.Errorf("NOKSTREAM_DB=%q: want the owner's postgres:// URL (%v)", settings["NOKSTREAM_DB"], err)
	} else if _, has := u.User.Password(); has {
		t.Errorf("NOKSTREAM_DB holds a password: it belongs in the credential PGPASSFILE names")
	}
	loaded := loadedCredentials(unit)
	if m := credentialRef.FindStringSubmatch(settings["PGPASSFILE"]); m == nil || !loaded[m[1]] {
		t.Errorf("PGPASSFILE=%q: want a credential the unit loads", settings["PGPASSFILE"])
	}
	checkEnv(t, envPath+" and "+unitPath, "index compact", keys(settings))
}
