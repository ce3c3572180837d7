package store

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// CandidateSearch selects candidates of Scope whose full name contains
// Query (not case-sensitive, ё as е), or, with BySNILS, whose СНИЛС
// contains Query's digits (of 3 or more), a page of Limit from Offset.
type CandidateSearch struct {
	Scope         Scope
	Query         string
	BySNILS       bool
	Limit, Offset int
}

// SearchCandidates returns a page of the candidates f selects, by name, and
// how many f selects in all.
func (s *Store) SearchCandidates(ctx context.Context, f CandidateSearch) ([]Candidate, int, error) {
	var a args
	where := f.Scope.where(scopeColumns{center: "k.center_id", councilCond: candidateSeenBy("k.id", "c.council_id")}, &a)
	q := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(f.Query)), "ё", "е")
	cond := ` AND (replace(lower(k.last_name || ' ' || k.first_name || ' ' || k.middle_name), 'ё', 'е') LIKE ` + a.add(likePattern(q))
	if digits := strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return r
		}
		return -1
	}, q); f.BySNILS && len(digits) >= 3 {
		cond += ` OR regexp_replace(k.snils, '[^0-9]', '', 'g') LIKE ` + a.add("%"+digits+"%")
	}
	cond += `)`
	from := ` FROM candidates k JOIN centers c ON c.id = k.center_id WHERE ` + where + cond
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*)`+from, a...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count candidates: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+candidateColumns+from+` ORDER BY k.last_name, k.first_name, k.middle_name, k.id LIMIT `+
		a.add(pageLimit(f.Limit))+` OFFSET `+a.add(max(f.Offset, 0)), a...)
	if err != nil {
		return nil, 0, fmt.Errorf("search candidates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Candidate, error) { return scanCandidate(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("search candidates: %w", err)
	}
	return out, total, nil
}
