package bootstrap_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/bootstrap"
	"github.com/nokstream/nokstream/registry/store"
)

// TestApply stands up testdata/exam.json twice: the first time creates
// everything and returns the device secrets and temporary passwords, the
// second changes nothing and returns none.
func TestApply(t *testing.T) {
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
	// Tests hash at OWASP's minimum cost: the default's 64 MiB and
	// three passes a login were most of make test's CPU here.
	if err := st.SetPasswordHashing(store.MinimumPasswordHashing()); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open("testdata/exam.json")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	f, err := bootstrap.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 3, 6, 30, 0, 0, time.UTC)
	r, err := bootstrap.Apply(ctx, st, f, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.DeviceSecrets) != 5 || len(r.Passwords) != 4 || len(r.Updated) != 0 {
		t.Errorf("first import: %d secrets, %d passwords, updated %v", len(r.DeviceSecrets), len(r.Passwords), r.Updated)
	}
	if _, err := st.AuthenticateDevice(ctx, "ep-ilinka", "room1", "room1", r.DeviceSecrets["ep-ilinka/room1"]); err != nil {
		t.Errorf("imported device secret: %v", err)
	}
	ecs, err := st.ExamCandidates(ctx, "exam-2025-03-03")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ec := range ecs {
		got = append(got, ec.Candidate.ID+":"+ec.Admission)
	}
	if !slices.Equal(got, []string{"zaitsev:refused", "orlova:admitted"}) {
		t.Errorf("exam candidates %v", got)
	}
	e, err := st.Exam(ctx, "exam-2025-03-03")
	if err != nil || len(e.Parts) != 2 || len(e.Experts) != 1 {
		t.Errorf("exam %+v %v", e, err)
	}
	if unmet, err := st.ResultPreconditions(ctx, e.ID); err != nil || len(unmet) != 0 {
		t.Errorf("imported organisation lacks details: %v %v", unmet, err)
	}
	r, err = bootstrap.Apply(ctx, st, f, now)
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	if len(r.DeviceSecrets) != 0 || len(r.Passwords) != 0 || len(r.Created) != 0 {
		t.Errorf("second import created %v", r.Created)
	}
	// Unknown fields are refused.
	if _, err := bootstrap.Decode(strings.NewReader(`{"councils":[{"id":"x","nmae":"y"}]}`)); err == nil {
		t.Errorf("decode accepted an unknown field")
	}
}
