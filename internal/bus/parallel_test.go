package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
)

// TestKafkaConsumeParallel: a consumer with four lanes on six partitions
// handles messages of different partitions side by side, never more than
// four at once; each key's messages in order, each once; a key whose
// handler keeps failing holds up only its own partition; and everything
// handled is committed (a new member of the group gets nothing again).
func TestKafkaConsumeParallel(t *testing.T) {
	t.Parallel()
	k := openKafka(t, 6)
	const keys, perKey, lanes = 12, 15, 4
	var (
		mu             sync.Mutex
		next           = map[string]int{}
		now, most      int
		stuckFails     int
		othersWhenHeld int // others handled while the stuck key was failing
	)
	stuck := "key0"
	h := func(_ context.Context, m bus.Message) error {
		n := seqOf(t, m)
		mu.Lock()
		if m.Key == stuck && n == 0 && stuckFails < 3 {
			stuckFails++
			mu.Unlock()
			return errors.New("not yet")
		}
		now++
		most = max(most, now)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // a round trip or two
		mu.Lock()
		defer mu.Unlock()
		now--
		if n != next[m.Key] {
			t.Errorf("%s/%d handled when %s/%d was next", m.Key, n, m.Key, next[m.Key])
		}
		next[m.Key] = n + 1
		if m.Key != stuck && stuckFails > 0 && stuckFails < 3 {
			othersWhenHeld++
		}
		return nil
	}
	for r := range perKey {
		for i := range keys {
			key := "key" + strconv.Itoa(i)
			if err := k.Publish(t.Context(), topic, key, fmt.Appendf(nil, "%s/%d", key, r)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.ConsumeParallel(ctx, topic, "parallel", lanes, h) }()
	waitFor(t, 90*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range keys {
			if next["key"+strconv.Itoa(i)] < perKey {
				return false
			}
		}
		return true
	}, "every message handled")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}
	mu.Lock()
	t.Logf("at most %d handlers at once; %d messages of other keys handled while %s failed %d times", most, othersWhenHeld, stuck, stuckFails)
	if most < 2 || most > lanes {
		t.Errorf("at most %d handlers ran at once; want 2 to %d", most, lanes)
	}
	if othersWhenHeld == 0 {
		t.Errorf("no other key's message was handled while %s's first failed", stuck)
	}
	mu.Unlock()

	// Everything handled was committed: the group's next member starts
	// after it.
	again := make(chan bus.Message, 1)
	stop := startConsumer(t, k, topic, "parallel", func(_ context.Context, m bus.Message) error {
		select {
		case again <- m:
		default:
		}
		return nil
	})
	if err := k.Publish(t.Context(), topic, "key1", []byte("key1/"+strconv.Itoa(perKey))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-again:
		if seqOf(t, m) != perKey {
			t.Errorf("after the parallel consumer, the group's next member got %s: it was not committed", m.Value)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the group's next member got nothing")
	}
	stop()
}
