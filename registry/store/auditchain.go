package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
)

// AuditBreak is the first place where the audit log's hash chain does not
// hold.
type AuditBreak struct {
	ID int64 // the row
	// Changed: the row's content no longer gives its hash. Otherwise the
	// row does not follow the one before it: a row between them was
	// removed, or this one was inserted.
	Changed bool
	PrevID  int64 // the row before it, 0 for none
}

func (b *AuditBreak) String() string {
	if b.Changed {
		return fmt.Sprintf("audit row %d was changed: its content does not give its hash", b.ID)
	}
	if b.PrevID == 0 {
		return fmt.Sprintf("audit row %d does not start the chain: the rows before it were removed, or it was inserted", b.ID)
	}
	return fmt.Sprintf("audit row %d does not follow row %d: a row between them was removed, or row %d was inserted", b.ID, b.PrevID, b.ID)
}

// AuditHead is the last row of the chain and its hash: recorded elsewhere
// (an anchor), it proves later that the log up to it was not rewritten.
type AuditHead struct {
	ID   int64
	Hash string // hex
	Rows int64  // rows checked
}

// VerifyAuditLog walks the audit log in id order and checks every row's
// hash against its content (audit_log_digest, migration 00050) and its
// link to the row before. It returns the first break, or nil, and the head
// of the chain as far as it holds. progress, if not nil, is called with the
// rows checked so far every 10 000 rows.
func (s *Store) VerifyAuditLog(ctx context.Context, progress func(rows int64)) (*AuditBreak, AuditHead, error) {
	const page = 10000
	var head AuditHead
	prev := []byte{}
	after := int64(math.MinInt64) // rows inserted with made-up ids are read too
	for {
		rows, err := s.pool.Query(ctx, `
			SELECT id, prev_hash, hash,
				hash = audit_log_digest(prev_hash, id, at, actor_id, actor_login, action, object, remote_addr, purpose, detail)
			FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`, after, page)
		if err != nil {
			return nil, head, fmt.Errorf("read the audit log: %w", err)
		}
		n := 0
		var brk *AuditBreak
		for rows.Next() {
			var id int64
			var p, h []byte
			var intact bool
			if err := rows.Scan(&id, &p, &h, &intact); err != nil {
				rows.Close()
				return nil, head, fmt.Errorf("read the audit log: %w", err)
			}
			n++
			switch {
			case !intact:
				brk = &AuditBreak{ID: id, Changed: true, PrevID: head.ID}
			case !bytes.Equal(p, prev):
				brk = &AuditBreak{ID: id, PrevID: head.ID}
			}
			if brk != nil {
				break
			}
			head.ID, head.Hash, prev, after = id, hex.EncodeToString(h), h, id
			head.Rows++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, head, fmt.Errorf("read the audit log: %w", err)
		}
		if brk != nil || n < page {
			return brk, head, nil
		}
		if progress != nil {
			progress(head.Rows)
		}
	}
}

// AuditHash returns the hash of audit row id, "" if there is none: to
// check an anchor recorded earlier.
func (s *Store) AuditHash(ctx context.Context, id int64) (string, error) {
	var h []byte
	err := s.pool.QueryRow(ctx, `SELECT hash FROM audit_log WHERE id = $1`, id).Scan(&h)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil
		}
		return "", fmt.Errorf("read audit row %d: %w", id, err)
	}
	return hex.EncodeToString(h), nil
}
