package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChooseExam(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	lead := 5 * time.Minute
	exam := func(id, site string, start, end time.Duration) examJSON {
		return examJSON{ID: id, Site: site, StartsAt: now.Add(start), EndsAt: now.Add(end)}
	}
	for _, tc := range []struct {
		name      string
		exams     []examJSON
		wantID    string
		wantStart time.Time
	}{
		{name: "none: a new one started a few minutes ago", wantStart: now.Add(-lead)},
		{name: "one in progress is reused", exams: []examJSON{exam("a", DemoSite, -time.Hour, 2*time.Hour)}, wantID: "a"},
		{name: "over: a new one", exams: []examJSON{exam("a", DemoSite, -4*time.Hour, -time.Hour)}, wantStart: now.Add(-lead)},
		{name: "just over: the new one starts when it ended", exams: []examJSON{exam("a", DemoSite, -3*time.Hour, -2*time.Minute)},
			wantStart: now.Add(-2 * time.Minute)},
		{name: "another site's exam does not count", exams: []examJSON{exam("b", "site9", -time.Hour, time.Hour)}, wantStart: now.Add(-lead)},
		{name: "ends exactly now: over", exams: []examJSON{exam("a", DemoSite, -3*time.Hour, 0)}, wantStart: now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, start, ok := ChooseExam(tc.exams, now, lead)
			switch {
			case tc.wantID != "" && (!ok || e.ID != tc.wantID):
				t.Errorf("got %q (found %v), want exam %q reused", e.ID, ok, tc.wantID)
			case tc.wantID == "" && ok:
				t.Errorf("reused %q, want a new exam", e.ID)
			case tc.wantID == "" && !start.Equal(tc.wantStart):
				t.Errorf("new exam starts at %s, want %s", start, tc.wantStart)
			}
		})
	}
}

func TestScheduleOffsets(t *testing.T) {
	epoch := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s := Schedule{Every: 5 * time.Minute, Spacing: time.Minute, Epoch: epoch}
	for _, tc := range []struct {
		name    string
		i       int
		started time.Time
		want    float64
	}{
		{"before the first round", 0, epoch.Add(-10 * time.Second), 10},
		{"the freeze is a spacing later", 1, epoch.Add(-10 * time.Second), 70},
		{"mid-cover: the one in progress", 0, epoch.Add(3 * time.Second), -3},
		{"after the drop: the one before, a round back", 2, epoch.Add(3 * time.Minute), -60},
		{"a later round", 0, epoch.Add(11 * time.Minute), -60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.offset(tc.i, tc.started); got != tc.want {
				t.Errorf("offset = %v, want %v", got, tc.want)
			}
		})
	}
	// next: in progress → now; over → the next round.
	if got := s.next(0, epoch.Add(3*time.Second), CoverFor); !got.Equal(epoch.Add(3 * time.Second)) {
		t.Errorf("next cover during one: %s, want now", got)
	}
	if got := s.next(0, epoch.Add(20*time.Second), CoverFor); !got.Equal(epoch.Add(5 * time.Minute)) {
		t.Errorf("next cover after one: %s, want the next round", got)
	}
	if err := (Schedule{Every: 10 * time.Second, Spacing: time.Minute}).Validate(); err == nil {
		t.Error("a round longer than the time between rounds was accepted")
	}
	if got := s.during(0, epoch.Add(3*time.Second), CoverFor); !strings.Contains(got, "t-(-3.000)") {
		t.Errorf("during = %s: want the cover in progress from the start", got)
	}
}

func TestCredentialsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo-credentials.json")
	c, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Users["nark"] = "secret-password"
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	back, err := LoadCredentials(path)
	if err != nil || back.Users["nark"] != "secret-password" {
		t.Errorf("read back %v (%v)", back.Users, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a file others may read: %v, want a refusal that says chmod 600", err)
	}
	if s := c.String(); strings.Contains(s, "secret-password") {
		t.Errorf("String() shows a password: %s", s)
	}
}
