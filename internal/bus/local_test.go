package bus_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/bus"
)

func openLocal(t *testing.T, dir string) *bus.Local {
	t.Helper()
	l, err := bus.NewLocal(dir, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func logPath(dir string) string { return filepath.Join(dir, topic, "records.log") }

// consumeN handles (and commits) n messages of topic in group, then stops,
// and returns their values.
func consumeN(t *testing.T, b bus.Bus, group string, n int) []string {
	t.Helper()
	rec := &recorder{}
	stop := startConsumer(t, b, topic, group, func(ctx context.Context, m bus.Message) error {
		if rec.len() < n {
			return rec.ok(ctx, m)
		}
		<-ctx.Done()
		return ctx.Err()
	})
	waitFor(t, 10*time.Second, func() bool { return rec.len() >= n }, strconv.Itoa(n)+" messages")
	stop()
	var vals []string
	for _, m := range rec.all() {
		vals = append(vals, string(m.Value))
	}
	return vals
}

// TestLocalReopen restarts the bus: what was published is kept, and a group
// resumes after its last committed message.
func TestLocalReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir)
	publishKeyed(t, l, 1, 10)
	if got := consumeN(t, l, "archiver", 4); !slices.Equal(got, []string{"key0/0", "key0/1", "key0/2", "key0/3"}) {
		t.Fatalf("first run got %v", got)
	}
	closeBus(t, l)

	l = openLocal(t, dir)
	t.Cleanup(func() { closeBus(t, l) })
	if err := l.Publish(t.Context(), topic, "key0", []byte("key0/10")); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	startConsumer(t, l, topic, "archiver", rec.ok)
	waitFor(t, 10*time.Second, func() bool { return rec.len() >= 7 }, "the unconsumed messages")
	var got []string
	var offsets []int64
	for _, m := range rec.all() {
		got = append(got, string(m.Value))
		offsets = append(offsets, m.Offset)
	}
	want := []string{"key0/4", "key0/5", "key0/6", "key0/7", "key0/8", "key0/9", "key0/10"}
	if !slices.Equal(got, want) {
		t.Errorf("after reopen got %v, want %v", got, want)
	}
	if wantOff := []int64{4, 5, 6, 7, 8, 9, 10}; !slices.Equal(offsets, wantOff) {
		t.Errorf("offsets %v, want %v", offsets, wantOff)
	}
	// A group that never ran starts at the beginning.
	if got := consumeN(t, l, "registry", 11); len(got) != 11 || got[0] != "key0/0" {
		t.Errorf("new group got %v, want all 11 from key0/0", got)
	}
}

// TestLocalTornTail reopens logs whose end was torn by a crash: the torn
// record is dropped, everything before it is delivered and new records follow.
func TestLocalTornTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		kept   int // of 5 records
	}{
		{"partial header", func(t *testing.T, path string) { appendBytes(t, path, []byte{0, 0, 0}) }, 5},
		{"partial body", func(t *testing.T, path string) {
			appendBytes(t, path, []byte{0, 0, 0, 100, 1, 2, 3, 4, 1, 0, 0})
		}, 5},
		{"zeros", func(t *testing.T, path string) { appendBytes(t, path, make([]byte, 4096)) }, 5},
		{"last record garbled", func(t *testing.T, path string) { flipByte(t, path, -2) }, 4},
		{"last record cut short", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()-3); err != nil {
				t.Fatal(err)
			}
		}, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := openLocal(t, dir)
			publishKeyed(t, l, 1, 5)
			closeBus(t, l)
			c.damage(t, logPath(dir))

			l = openLocal(t, dir)
			t.Cleanup(func() { closeBus(t, l) })
			if err := l.Publish(t.Context(), topic, "key0", []byte("key0/new")); err != nil {
				t.Fatal(err)
			}
			got := consumeN(t, l, "g", c.kept+1)
			var want []string
			for i := range c.kept {
				want = append(want, "key0/"+strconv.Itoa(i))
			}
			want = append(want, "key0/new")
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// TestLocalDamagedMiddle refuses to open a log damaged before its end, and
// leaves the file as it was, rather than drop the good records after the
// damage.
func TestLocalDamagedMiddle(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir)
	publishKeyed(t, l, 1, 5)
	closeBus(t, l)
	path := logPath(dir)
	flipByte(t, path, 20) // inside the first record
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	if l, err := bus.NewLocal(dir, testLogger(t), nil); err == nil {
		closeBus(t, l)
		t.Fatal("NewLocal opened a log damaged in the middle")
	} else {
		t.Logf("NewLocal: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("NewLocal changed a damaged log")
	}
}

// TestLocalDirLocked refuses a second bus on a directory in use.
func TestLocalDirLocked(t *testing.T) {
	dir := t.TempDir()
	l := openLocal(t, dir)
	if l2, err := bus.NewLocal(dir, testLogger(t), nil); err == nil {
		closeBus(t, l2)
		t.Fatal("second NewLocal on the same directory succeeded")
	}
	closeBus(t, l)
	l = openLocal(t, dir)
	closeBus(t, l)
}

// TestLocalClosed: after Close, Publish fails and a running consumer returns.
func TestLocalClosed(t *testing.T) {
	l := openLocal(t, t.TempDir())
	done := make(chan error, 1)
	go func() { done <- l.Consume(context.Background(), topic, "g", (&recorder{}).ok) }()
	closeBus(t, l)
	select {
	case err := <-done:
		if err == nil {
			t.Error("Consume returned nil after Close, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Consume still running 10s after Close")
	}
	if err := l.Publish(t.Context(), topic, "k", []byte("v")); err == nil {
		t.Error("Publish after Close succeeded")
	}
}

// TestLocalStandby runs two consumers in one group: one handles everything
// in order while the other waits, and takes over when the first stops.
func TestLocalStandby(t *testing.T) {
	l := openLocal(t, "")
	t.Cleanup(func() { closeBus(t, l) })
	a, b := &recorder{}, &recorder{}
	stopA := startConsumer(t, l, topic, "g", a.ok)
	publishKeyed(t, l, 1, 5)
	waitFor(t, 10*time.Second, func() bool { return a.len() >= 5 }, "first consumer")
	startConsumer(t, l, topic, "g", b.ok)
	stopA()
	publishKeyed(t, l, 1, 3)
	waitFor(t, 10*time.Second, func() bool { return b.len() >= 3 }, "standby to take over")
	if a.len() != 5 {
		t.Errorf("stopped consumer handled %d, want 5", a.len())
	}
}

func TestLocalInvalidNames(t *testing.T) {
	l := openLocal(t, t.TempDir())
	t.Cleanup(func() { closeBus(t, l) })
	for _, name := range []string{"", "..", "a/b", "a b"} {
		if err := l.Publish(t.Context(), name, "k", nil); err == nil {
			t.Errorf("Publish to topic %q succeeded", name)
		}
		if err := l.Consume(t.Context(), topic, name, (&recorder{}).ok); err == nil {
			t.Errorf("Consume in group %q succeeded", name)
		}
	}
}

// TestMetrics checks the counters a dashboard shows.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := bus.NewLocal("", testLogger(t), bus.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(t, l) })
	publishKeyed(t, l, 1, 3)
	fails := 0
	rec := &recorder{}
	startConsumer(t, l, topic, "g", func(ctx context.Context, m bus.Message) error {
		switch seqOf(t, m) {
		case 0:
			if fails == 0 {
				fails++
				return context.DeadlineExceeded
			}
		case 1:
			return bus.Permanent(os.ErrInvalid)
		}
		return rec.ok(ctx, m)
	})
	waitFor(t, 10*time.Second, func() bool { return rec.len() >= 2 }, "messages handled")

	want := map[string]float64{
		`nokstream_bus_published_total{topic="nokstream.segments.v1"}`:                              3,
		`nokstream_bus_published_total{topic="nokstream.segments.v1.dlq"}`:                          1,
		`nokstream_bus_handled_total{group="g",result="ok",topic="nokstream.segments.v1"}`:          2,
		`nokstream_bus_handled_total{group="g",result="retry",topic="nokstream.segments.v1"}`:       1,
		`nokstream_bus_handled_total{group="g",result="dead_letter",topic="nokstream.segments.v1"}`: 1,
	}
	got := gather(t, reg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got[`nokstream_bus_publish_seconds_count{topic="nokstream.segments.v1"}`] != 3 {
		t.Errorf("publish_seconds has %v observations, want 3", got[`nokstream_bus_publish_seconds_count{topic="nokstream.segments.v1"}`])
	}
}

// gather returns counter values and histogram counts by series.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			series := "{" + strings.Join(labels, ",") + "}"
			if c := m.GetCounter(); c != nil {
				out[mf.GetName()+series] = c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				out[mf.GetName()+"_count"+series] = float64(h.GetSampleCount())
			}
		}
	}
	return out
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// flipByte inverts the byte at off, counted from the end if negative.
func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}
