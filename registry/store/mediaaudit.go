package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MediaAccess is what one user fetched of one stream's media for one
// purpose in one audit window: the fetches are counted, not listed. The
// registry adds what it served every few seconds (AddMediaAccess), and a
// window becomes one audit_log row when it closes (CloseMediaAccess).
type MediaAccess struct {
	ActorID    int64
	ActorLogin string
	Stream     string // site/device
	Purpose    string
	// WindowStart and WindowEnd bound the window the fetches fell in.
	WindowStart, WindowEnd time.Time
	RemoteAddrs            []string // distinct; at most MaxMediaAccessAddrs are kept
	Via                    []string // how the caller authenticated: "token", "signed_url"
	Fetches                int64    // requests answered
	Ranged                 int64    // of which with a Range header
	Init                   int64    // of which for init segments
	// First and Last are the times of the first and last fetch.
	First, Last time.Time
	// MediaFrom and MediaTo span the footage fetched (the segments'
	// start and end); zero when only init segments were fetched.
	MediaFrom, MediaTo time.Time
}

// MaxMediaAccessAddrs is how many distinct client addresses a window keeps.
const MaxMediaAccessAddrs = 16

// Merge adds o, of the same user, stream, purpose and window, to a.
func (a *MediaAccess) Merge(o MediaAccess) {
	for _, x := range o.RemoteAddrs {
		if !slices.Contains(a.RemoteAddrs, x) && len(a.RemoteAddrs) < MaxMediaAccessAddrs {
			a.RemoteAddrs = append(a.RemoteAddrs, x)
		}
	}
	for _, x := range o.Via {
		if !slices.Contains(a.Via, x) {
			a.Via = append(a.Via, x)
		}
	}
	a.Fetches += o.Fetches
	a.Ranged += o.Ranged
	a.Init += o.Init
	if a.First.IsZero() || (!o.First.IsZero() && o.First.Before(a.First)) {
		a.First = o.First
	}
	if o.Last.After(a.Last) {
		a.Last = o.Last
	}
	if a.MediaFrom.IsZero() || (!o.MediaFrom.IsZero() && o.MediaFrom.Before(a.MediaFrom)) {
		a.MediaFrom = o.MediaFrom
	}
	if o.MediaTo.After(a.MediaTo) {
		a.MediaTo = o.MediaTo
	}
}

// AddMediaAccess adds the fetches in accesses to their open windows, in one
// transaction: a window another registry also serves sums both.
func (s *Store) AddMediaAccess(ctx context.Context, accesses []MediaAccess) error {
	if len(accesses) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, a := range accesses {
		batch.Queue(`
			INSERT INTO media_access AS m (actor_id, stream, purpose, window_start, window_end, actor_login, remote_addrs, via,
				fetches, ranged, init, first_at, last_at, media_from, media_to)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (actor_id, stream, purpose, window_start) DO UPDATE SET
				remote_addrs = (SELECT coalesce(array_agg(x ORDER BY o), '{}') FROM (
					SELECT x, min(o) AS o FROM unnest(m.remote_addrs || excluded.remote_addrs) WITH ORDINALITY AS u(x, o)
					GROUP BY x ORDER BY min(o) LIMIT 16) d),
				via = (SELECT array_agg(DISTINCT v ORDER BY v) FROM unnest(m.via || excluded.via) v),
				fetches = m.fetches + excluded.fetches,
				ranged = m.ranged + excluded.ranged,
				init = m.init + excluded.init,
				first_at = least(m.first_at, excluded.first_at),
				last_at = greatest(m.last_at, excluded.last_at),
				media_from = least(m.media_from, excluded.media_from),
				media_to = greatest(m.media_to, excluded.media_to)`,
			a.ActorID, a.Stream, a.Purpose, a.WindowStart, a.WindowEnd, a.ActorLogin, nonNil(a.RemoteAddrs), nonNil(a.Via),
			a.Fetches, a.Ranged, a.Init, a.First, a.Last, nullTime(a.MediaFrom), nullTime(a.MediaTo))
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return fmt.Errorf("add %d media access windows: %w", len(accesses), err)
	}
	return nil
}

// CloseMediaAccess turns every window that ended by until into one
// media.get row of the audit log, object the stream, and removes it from
// the open windows, in one transaction: two registries closing at once
// write each window once. It returns how many rows it wrote.
func (s *Store) CloseMediaAccess(ctx context.Context, until time.Time) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			DELETE FROM media_access WHERE window_end <= $1
			RETURNING actor_id, stream, purpose, window_start, window_end, actor_login, remote_addrs, via,
				fetches, ranged, init, first_at, last_at, media_from, media_to`, until)
		if err != nil {
			return err
		}
		closed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MediaAccess, error) {
			var a MediaAccess
			var from, to *time.Time
			err := r.Scan(&a.ActorID, &a.Stream, &a.Purpose, &a.WindowStart, &a.WindowEnd, &a.ActorLogin, &a.RemoteAddrs, &a.Via,
				&a.Fetches, &a.Ranged, &a.Init, &a.First, &a.Last, &from, &to)
			if from != nil && to != nil {
				a.MediaFrom, a.MediaTo = *from, *to
			}
			return a, err
		})
		if err != nil {
			return err
		}
		// In the order the windows were used, so the chain reads in time.
		slices.SortFunc(closed, func(a, b MediaAccess) int {
			return cmp.Or(a.First.Compare(b.First), cmp.Compare(a.ActorID, b.ActorID),
				strings.Compare(a.Stream, b.Stream), strings.Compare(a.Purpose, b.Purpose))
		})
		for _, a := range closed {
			if err := auditIn(ctx, tx, a.AuditEntry()); err != nil {
				return err
			}
		}
		n = len(closed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("close media access windows: %w", err)
	}
	return n, nil
}

// AuditEntry is the audit log's row of a closed window: action media.get,
// object the stream, at the first fetch, and in the detail the count and
// span of the fetches.
func (a MediaAccess) AuditEntry() AuditEntry {
	detail := map[string]any{
		"fetches":      a.Fetches,
		"ranged":       a.Ranged,
		"init":         a.Init,
		"first_at":     a.First.UTC(),
		"last_at":      a.Last.UTC(),
		"window_start": a.WindowStart.UTC(),
		"window_end":   a.WindowEnd.UTC(),
		// "signed_url", "token", or both: "signed_url,token".
		"via": strings.Join(slices.Sorted(slices.Values(a.Via)), ","),
	}
	if !a.MediaFrom.IsZero() {
		detail["media_from"], detail["media_to"] = a.MediaFrom.UTC(), a.MediaTo.UTC()
	}
	return AuditEntry{At: a.First, ActorID: a.ActorID, ActorLogin: a.ActorLogin, Action: "media.get", Object: a.Stream,
		RemoteAddr: strings.Join(a.RemoteAddrs, ", "), Purpose: a.Purpose, Detail: detail}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
