package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// examPasswordAlphabet is what exam passwords are made of: capital letters
// and digits without the easily confused I, L, O, U, 0 and 1.
const examPasswordAlphabet = "ABCDEFGHJKMNPQRSTVWXYZ23456789"

// examPasswordLen is the number of characters of an exam password: 12 of
// 30 symbols are 58.9 bits.
const examPasswordLen = 12

// newExamPassword returns a random exam password as XXXX-XXXX-XXXX.
func newExamPassword() (string, error) {
	var b strings.Builder
	n := big.NewInt(int64(len(examPasswordAlphabet)))
	for i := range examPasswordLen {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		v, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", fmt.Errorf("generate exam password: %w", err)
		}
		b.WriteByte(examPasswordAlphabet[v.Int64()])
	}
	return b.String(), nil
}

// examPasswordHash is what exam_candidates keeps of an exam password: the
// SHA-256 of its symbols, uppercased, without separators, so that
// "abcd efgh-jkmn" is the same password as "ABCD-EFGH-JKMN".
func examPasswordHash(password string) []byte {
	var b strings.Builder
	for _, r := range strings.ToUpper(password) {
		if r != '-' && r != ' ' {
			b.WriteRune(r)
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return sum[:]
}

// IssueExamPassword gives admitted candidate of exam a new unique exam
// password and returns it: it is shown only here. A password issued before
// stops working for new logins, but the candidate's exam sessions go on:
// a site issuing a new password while the candidate is live does not cut
// them off (and ingest refuses a second publisher of a live stream). A
// candidate not admitted, or an exam that has ended by now, is ErrState;
// refusing the candidate's admission ends their sessions.
func (s *Store) IssueExamPassword(ctx context.Context, exam, candidate string, now time.Time) (password string, err error) {
	for range 5 {
		password, err = newExamPassword()
		if err != nil {
			return "", err
		}
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var admission string
			var ends time.Time
			err := tx.QueryRow(ctx, `SELECT ec.admission, e.ends_at FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id
				WHERE ec.exam_id = $1 AND ec.candidate_id = $2 FOR UPDATE OF ec`, exam, candidate).Scan(&admission, &ends)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			if admission != AdmissionAdmitted {
				return fmt.Errorf("%w: the candidate is %s, not admitted", ErrState, admission)
			}
			if !now.Before(ends) {
				return fmt.Errorf("%w: the exam ended at %s", ErrState, ends.UTC().Format(time.RFC3339))
			}
			_, err = tx.Exec(ctx, `UPDATE exam_candidates SET password_hash = $3, password_issued_at = $4
				WHERE exam_id = $1 AND candidate_id = $2`, exam, candidate, examPasswordHash(password), now)
			return err
		})
		if !isUniqueViolation(err) {
			break
		}
		// Two candidates drew the same password: draw again.
	}
	if err != nil {
		return "", fmt.Errorf("issue exam password to %s of exam %s: %w", candidate, exam, err)
	}
	return password, nil
}

// ExamSession is a candidate's session of an exam, started with the exam
// password.
type ExamSession struct {
	ExamID      string
	CandidateID string
	SiteID      string
	Webcam      string // device names at SiteID
	Screen      string
	Start, End  time.Time // the exam window
	ExpiresAt   time.Time
}

// Contains reports whether t is inside the exam window.
func (e ExamSession) Contains(t time.Time) bool { return !t.Before(e.Start) && t.Before(e.End) }

// WindowError is an ErrOutsideWindow with the window.
type WindowError struct {
	Start, End time.Time
}

func (e *WindowError) Error() string {
	return fmt.Sprintf("%v: the exam runs from %s to %s", ErrOutsideWindow,
		e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339))
}

// Unwrap returns ErrOutsideWindow.
func (e *WindowError) Unwrap() error { return ErrOutsideWindow }

// ExamLogin starts an exam session with an exam password and returns its
// token, which lasts until the end of the exam window. An unknown password,
// or one of a candidate no longer admitted, is ErrBadCredentials; a
// password used outside its exam window (at now) is a *WindowError.
func (s *Store) ExamLogin(ctx context.Context, password string, now time.Time) (token string, es ExamSession, err error) {
	err = s.pool.QueryRow(ctx, `SELECT ec.exam_id, ec.candidate_id, ec.site_id, ec.webcam_device, ec.screen_device, e.starts_at, e.ends_at
		FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id
		WHERE ec.password_hash = $1 AND ec.admission = 'admitted'`, examPasswordHash(password)).
		Scan(&es.ExamID, &es.CandidateID, &es.SiteID, &es.Webcam, &es.Screen, &es.Start, &es.End)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ExamSession{}, fmt.Errorf("exam login: %w", ErrBadCredentials)
	}
	if err != nil {
		return "", ExamSession{}, fmt.Errorf("exam login: %w", err)
	}
	if !es.Contains(now) {
		return "", ExamSession{}, fmt.Errorf("exam login: %w", &WindowError{Start: es.Start, End: es.End})
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", ExamSession{}, fmt.Errorf("exam login: generate token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	es.ExpiresAt = es.End
	_, err = s.pool.Exec(ctx, `INSERT INTO exam_sessions (token_hash, exam_id, candidate_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		tokenHash(token), es.ExamID, es.CandidateID, now, es.ExpiresAt)
	if err != nil {
		return "", ExamSession{}, fmt.Errorf("exam login: %w", err)
	}
	return token, es, nil
}

// ExamSessionByToken returns the exam session of token. An unknown token,
// one expired at now, or one of a candidate no longer admitted is
// ErrBadCredentials.
func (s *Store) ExamSessionByToken(ctx context.Context, token string, now time.Time) (ExamSession, error) {
	var es ExamSession
	err := s.pool.QueryRow(ctx, `SELECT ec.exam_id, ec.candidate_id, ec.site_id, ec.webcam_device, ec.screen_device, e.starts_at, e.ends_at, xs.expires_at
		FROM exam_sessions xs JOIN exam_candidates ec ON ec.exam_id = xs.exam_id AND ec.candidate_id = xs.candidate_id
		JOIN exams e ON e.id = ec.exam_id
		WHERE xs.token_hash = $1 AND xs.expires_at > $2 AND ec.admission = 'admitted'`, tokenHash(token), now).
		Scan(&es.ExamID, &es.CandidateID, &es.SiteID, &es.Webcam, &es.Screen, &es.Start, &es.End, &es.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ExamSession{}, fmt.Errorf("check exam token: %w", ErrBadCredentials)
	}
	if err != nil {
		return ExamSession{}, fmt.Errorf("check exam token: %w", err)
	}
	return es, nil
}

// CandidatePublisher checks that the holder of an exam token may publish
// stream <site>/<device> at now: the device is the webcam or screen of the
// token's candidate in that exam, and now is inside the exam window. It
// returns the device's kind (KindWebcam or KindScreen) and the session.
// Another device, a bad or expired token, or a time outside the window is
// ErrBadCredentials; a candidate who has not consented to the recording
// (RecordConsent) ErrNoConsent, which wraps it.
func (s *Store) CandidatePublisher(ctx context.Context, token, site, device string, now time.Time) (string, ExamSession, error) {
	es, err := s.ExamSessionByToken(ctx, token, now)
	if err != nil {
		return "", ExamSession{}, err
	}
	if !es.Contains(now) || es.SiteID != site {
		return "", ExamSession{}, fmt.Errorf("check candidate publisher of %s/%s: %w", site, device, ErrBadCredentials)
	}
	kind := ""
	switch device {
	case es.Webcam:
		kind = KindWebcam
	case es.Screen:
		kind = KindScreen
	default:
		return "", ExamSession{}, fmt.Errorf("check candidate publisher of %s/%s: %w", site, device, ErrBadCredentials)
	}
	var consented bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM exam_consents WHERE exam_id = $1 AND candidate_id = $2)`,
		es.ExamID, es.CandidateID).Scan(&consented); err != nil {
		return "", ExamSession{}, fmt.Errorf("check candidate publisher of %s/%s: %w", site, device, err)
	}
	if !consented {
		return "", ExamSession{}, fmt.Errorf("check candidate publisher of %s/%s: %w", site, device, ErrNoConsent)
	}
	return kind, es, nil
}
