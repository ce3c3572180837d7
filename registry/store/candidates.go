package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Candidate is a person registered by a center to sit exams (соискатель).
type Candidate struct {
	ID        string
	CenterID  string
	CouncilID string // the center's home council; read only
	// Councils are the councils that see the candidate (read only): those
	// of the candidate's exams, or the home council while there are none.
	// A multi-industry center's councils each see only their part.
	Councils   []string
	LastName   string
	FirstName  string
	MiddleName string
	// SNILS is the insurance number (СНИЛС) as NNN-NNN-NNN NN, or "".
	SNILS string
	// Document is the type and number of an identity document, required
	// when there is no SNILS.
	Document  string
	Email     string
	Phone     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FullName returns the candidate's ФИО.
func (c Candidate) FullName() string {
	return strings.Join(cleanList([]string{c.LastName, c.FirstName, c.MiddleName}), " ")
}

// Owner returns where the candidate sits: with the center that registered
// them, seen by the councils of Councils.
func (c Candidate) Owner() Owner { return Owner{Councils: c.Councils, Center: c.CenterID} }

// NormalizeSNILS returns a СНИЛС in the form NNN-NNN-NNN NN, from 11 digits
// with any separators, after checking its control number. "" stays "".
func NormalizeSNILS(s string) (string, error) {
	var digits []byte
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits = append(digits, byte(r))
		case r == ' ' || r == '-':
		default:
			return "", fmt.Errorf("%w: СНИЛС %q has a character other than digits, spaces and '-'", ErrInvalid, s)
		}
	}
	if len(digits) == 0 {
		return "", nil
	}
	if len(digits) != 11 {
		return "", fmt.Errorf("%w: СНИЛС %q has %d digits, want 11", ErrInvalid, s, len(digits))
	}
	number, _ := strconv.Atoi(string(digits[:9]))
	control, _ := strconv.Atoi(string(digits[9:]))
	// The control number is checked for numbers above 001-001-998: the sum
	// of the digits weighted 9 down to 1, modulo 101, with 100 as 00.
	if number > 1001998 {
		sum := 0
		for i := range 9 {
			sum += int(digits[i]-'0') * (9 - i)
		}
		want := sum % 101
		if want == 100 {
			want = 0
		}
		if control != want {
			return "", fmt.Errorf("%w: СНИЛС %q: control number %02d, want %02d", ErrInvalid, s, control, want)
		}
	}
	d := string(digits)
	return d[0:3] + "-" + d[3:6] + "-" + d[6:9] + " " + d[9:11], nil
}

// SaveCandidate creates candidate c of center c.CenterID, or updates the
// details of an existing one, and reports whether it was created. A
// candidate needs a name and a СНИЛС or document; a candidate never moves to
// another center (ErrInvalid).
func (s *Store) SaveCandidate(ctx context.Context, c Candidate) (created bool, err error) {
	if err := checkID("candidate", c.ID); err != nil {
		return false, fmt.Errorf("save candidate: %w", err)
	}
	if c.SNILS, err = NormalizeSNILS(c.SNILS); err != nil {
		return false, fmt.Errorf("save candidate %s: %w", c.ID, err)
	}
	c.LastName, c.FirstName, c.MiddleName = strings.TrimSpace(c.LastName), strings.TrimSpace(c.FirstName), strings.TrimSpace(c.MiddleName)
	c.Document, c.Email, c.Phone = strings.TrimSpace(c.Document), strings.TrimSpace(c.Email), strings.TrimSpace(c.Phone)
	switch {
	case c.LastName == "" || c.FirstName == "":
		return false, fmt.Errorf("save candidate %s: %w: last and first name are required", c.ID, ErrInvalid)
	case c.SNILS == "" && c.Document == "":
		return false, fmt.Errorf("save candidate %s: %w: a СНИЛС or an identity document is required", c.ID, ErrInvalid)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM centers WHERE id = $1`, c.CenterID).Scan(new(string)); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: center %q", ErrNotFound, c.CenterID)
		} else if err != nil {
			return err
		}
		var was string
		err := tx.QueryRow(ctx, `SELECT center_id FROM candidates WHERE id = $1 FOR UPDATE`, c.ID).Scan(&was)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created = true
		case err != nil:
			return err
		case was != c.CenterID:
			return fmt.Errorf("%w: candidate %s is registered by center %s", ErrExists, c.ID, was)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO candidates (id, center_id, last_name, first_name, middle_name, snils, document, email, phone)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET last_name = EXCLUDED.last_name, first_name = EXCLUDED.first_name,
				middle_name = EXCLUDED.middle_name, snils = EXCLUDED.snils, document = EXCLUDED.document,
				email = EXCLUDED.email, phone = EXCLUDED.phone, updated_at = now()`,
			c.ID, c.CenterID, c.LastName, c.FirstName, c.MiddleName, c.SNILS, c.Document, c.Email, c.Phone)
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: center %s has another candidate with СНИЛС %s", ErrExists, c.CenterID, c.SNILS)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("save candidate %s: %w", c.ID, err)
	}
	return created, nil
}

const candidateColumns = `k.id, k.center_id, c.council_id,
	coalesce(nullif((SELECT array_agg(DISTINCT x.council_id ORDER BY x.council_id) FROM exam_candidates xc JOIN exams x ON x.id = xc.exam_id
		WHERE xc.candidate_id = k.id), '{}'), ARRAY[c.council_id]),
	k.last_name, k.first_name, k.middle_name, k.snils, k.document,
	k.email, k.phone, k.created_at, k.updated_at`

func scanCandidate(row pgx.Row) (Candidate, error) {
	var c Candidate
	err := row.Scan(&c.ID, &c.CenterID, &c.CouncilID, &c.Councils, &c.LastName, &c.FirstName, &c.MiddleName, &c.SNILS, &c.Document,
		&c.Email, &c.Phone, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// Candidate returns candidate id, or ErrNotFound.
func (s *Store) Candidate(ctx context.Context, id string) (Candidate, error) {
	c, err := scanCandidate(s.pool.QueryRow(ctx, `SELECT `+candidateColumns+`
		FROM candidates k JOIN centers c ON c.id = k.center_id WHERE k.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Candidate{}, fmt.Errorf("get candidate %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Candidate{}, fmt.Errorf("get candidate %s: %w", id, err)
	}
	return c, nil
}

// Candidates returns the candidates in sc, by last name. Candidates belong
// to centers: a site or an expert sees them only through exams.
func (s *Store) Candidates(ctx context.Context, sc Scope) ([]Candidate, error) {
	var a args
	where := sc.where(scopeColumns{center: "k.center_id", councilCond: candidateSeenBy("k.id", "c.council_id")}, &a)
	rows, err := s.pool.Query(ctx, `SELECT `+candidateColumns+`
		FROM candidates k JOIN centers c ON c.id = k.center_id WHERE `+where+`
		ORDER BY k.last_name, k.first_name, k.id`, a...)
	if err != nil {
		return nil, fmt.Errorf("list candidates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Candidate, error) { return scanCandidate(r) })
	if err != nil {
		return nil, fmt.Errorf("list candidates: %w", err)
	}
	return out, nil
}

// documentKind is what a document kind looks like.
var documentKind = regexp.MustCompile(`^[a-z][a-z_]{0,31}$`)

// DocumentPrefix starts the blob-store key of every document: documents are
// records of the registry, not footage.
const DocumentPrefix = "documents/"

// Document is a scanned document stored in the blob store: a candidate's
// (passport, snils, diploma, application, consent…) or an exam's protocol.
type Document struct {
	ID          string
	CandidateID string // one of CandidateID and ExamID is set
	ExamID      string
	Kind        string
	Filename    string
	ContentType string
	Bytes       int64
	SHA256      string
	ObjectKey   string
	UploadedBy  int64
	UploadedAt  time.Time
}

// DocumentKey returns the blob-store key of a new document id of candidate
// or exam owner.
func DocumentKey(owner, id string) string { return DocumentPrefix + owner + "/" + id }

// AddDocument records d, whose bytes are already stored under d.ObjectKey.
// d.ID is set if empty.
func (s *Store) AddDocument(ctx context.Context, d *Document) error {
	if d.ID == "" {
		d.ID = NewID()
	}
	if !documentKind.MatchString(d.Kind) {
		return fmt.Errorf("add document: %w: kind %q: want a-z and '_'", ErrInvalid, d.Kind)
	}
	if d.CandidateID == "" && d.ExamID == "" {
		return fmt.Errorf("add document: %w: a document belongs to a candidate, an exam, or both (a candidate-exam)", ErrInvalid)
	}
	// The document and the snapshots of the candidate-exams it is evidence
	// of (the archiver's copy of the facts) commit together.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
		INSERT INTO documents (id, candidate_id, exam_id, kind, filename, content_type, bytes, sha256, object_key, uploaded_by)
		VALUES ($1, nullif($2, ''), nullif($3, ''), $4, $5, $6, $7, $8, $9, nullif($10, 0)) RETURNING uploaded_at`,
			d.ID, d.CandidateID, d.ExamID, d.Kind, limitText(d.Filename, 255), d.ContentType, d.Bytes, d.SHA256, d.ObjectKey, d.UploadedBy).
			Scan(&d.UploadedAt)
		if err != nil {
			return err
		}
		return enqueueDocumentFacts(ctx, tx, d.ID, d.UploadedAt)
	})
	if isForeignKeyViolation(err) {
		return fmt.Errorf("add document: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add document: %w", err)
	}
	return nil
}

const documentColumns = `id, coalesce(candidate_id, ''), coalesce(exam_id, ''), kind, filename, content_type, bytes, sha256,
	object_key, coalesce(uploaded_by, 0), uploaded_at`

func scanDocument(row pgx.Row) (Document, error) {
	var d Document
	err := row.Scan(&d.ID, &d.CandidateID, &d.ExamID, &d.Kind, &d.Filename, &d.ContentType, &d.Bytes, &d.SHA256,
		&d.ObjectKey, &d.UploadedBy, &d.UploadedAt)
	return d, err
}

// Document returns document id, or ErrNotFound.
func (s *Store) Document(ctx context.Context, id string) (Document, error) {
	d, err := scanDocument(s.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM documents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Document{}, fmt.Errorf("get document %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Document{}, fmt.Errorf("get document %s: %w", id, err)
	}
	return d, nil
}

// CandidateDocuments returns the documents of candidate, oldest first:
// their own papers, not those of one of their exams (IdentityDocuments).
func (s *Store) CandidateDocuments(ctx context.Context, candidate string) ([]Document, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE candidate_id = $1 AND exam_id IS NULL
		ORDER BY uploaded_at, id`, candidate)
	if err != nil {
		return nil, fmt.Errorf("list documents of %s: %w", candidate, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Document, error) { return scanDocument(r) })
	if err != nil {
		return nil, fmt.Errorf("list documents of %s: %w", candidate, err)
	}
	return out, nil
}

// limitText cuts s to at most n bytes of valid UTF-8.
func limitText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
