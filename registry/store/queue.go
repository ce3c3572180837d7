package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Review states of a candidate-exam in an expert's queue.
const (
	ReviewNotStarted = "not_started" // the expert has neither opened the recordings nor marked anything
	ReviewInProgress = "in_progress" // opened or marked, no verdict yet
	ReviewVerdict    = "verdict_given"
)

// ReviewQueueItem is one candidate-exam in an expert's review queue: what
// the expert needs to choose what to review next, names rather than ids,
// and nothing of the candidate beyond the name.
type ReviewQueueItem struct {
	ExamID            string
	CandidateID       string
	CandidateName     string // ФИО
	Qualification     string
	QualificationName string
	SiteID            string
	SiteName          string
	SiteTimeZone      string // the site's IANA zone, in which the pages show the exam's times
	CenterID          string
	CenterName        string
	Start, End        time.Time
	Admission         string
	// State is ReviewNotStarted, ReviewInProgress or ReviewVerdict, of the
	// expert whose queue this is.
	State string
	// OpenedAt is when the expert first opened the recordings, if ever.
	OpenedAt *time.Time
	// Verdict is the expert's own verdict, if given.
	Verdict *Verdict
	// Marks and Violations count the expert's own marks; AllMarks those
	// of every expert of the exam.
	Marks, Violations, AllMarks int
	// Observations counts what the transcoder and ingest observed on the
	// candidate's evidence streams (webcam, screen, the site's room
	// cameras) inside the exam window; FlaggedSeconds is their total
	// length clipped to the window.
	Observations   int
	FlaggedSeconds float64
}

// ReviewQueueFilter narrows an expert's review queue.
type ReviewQueueFilter struct {
	Exam string // only this exam, when not ""
	// From and To, when not zero, keep exams whose window overlaps
	// [From, To).
	From, To time.Time
}

// ReviewQueue returns the candidate-exams of the exams expert is appointed
// to, sorted by what needs attention (reviewQueueLess).
func (s *Store) ReviewQueue(ctx context.Context, expert int64, f ReviewQueueFilter, now time.Time) ([]ReviewQueueItem, error) {
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	// Observations are summed per stream over the exam window: the
	// webcam, the screen and every room camera of the site.
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, c.id, c.last_name, c.first_name, c.middle_name,
			q.code, q.name, e.site_id, coalesce(st.name, ''), coalesce(st.time_zone, 'Europe/Moscow'), ce.id, ce.name,
			e.starts_at, e.ends_at, ec.admission,
			(SELECT min(a.at) FROM audit_log a WHERE a.object = e.id || '/' || c.id AND a.action = 'evidence.list' AND a.actor_id = $1),
			v.procedure_confirmed, coalesce(v.reasons, ''), v.decided_at,
			(SELECT count(*) FROM review_marks m WHERE m.exam_id = e.id AND m.candidate_id = c.id AND m.expert_id = $1),
			(SELECT count(*) FROM review_marks m WHERE m.exam_id = e.id AND m.candidate_id = c.id AND m.expert_id = $1 AND m.kind = 'violation'),
			(SELECT count(*) FROM review_marks m WHERE m.exam_id = e.id AND m.candidate_id = c.id),
			obs.n, obs.seconds
		FROM exam_experts x
		JOIN exams e ON e.id = x.exam_id
		JOIN exam_candidates ec ON ec.exam_id = e.id
		JOIN candidates c ON c.id = ec.candidate_id
		JOIN qualifications q ON q.code = e.qualification_code
		JOIN centers ce ON ce.id = e.center_id
		LEFT JOIN sites st ON st.id = e.site_id
		LEFT JOIN review_verdicts v ON v.exam_id = e.id AND v.candidate_id = c.id AND v.expert_id = $1
		CROSS JOIN LATERAL (
			SELECT count(*) AS n,
				coalesce(sum(extract(epoch FROM least(o.end_at, e.ends_at) - greatest(o.start_at, e.starts_at))), 0)::float8 AS seconds
			FROM observations o
			WHERE o.stream_id = ANY(ARRAY[e.site_id || '/' || ec.webcam_device, e.site_id || '/' || ec.screen_device] ||
					ARRAY(SELECT d.site || '/' || d.name FROM devices d WHERE d.site = e.site_id AND d.kind = 'room'))
				AND o.start_at < e.ends_at AND o.end_at >= e.starts_at
		) obs
		WHERE x.user_id = $1 AND ($2 = '' OR e.id = $2)
			AND ($3::timestamptz IS NULL OR e.ends_at > $3) AND ($4::timestamptz IS NULL OR e.starts_at < $4)`,
		expert, f.Exam, from, to)
	if err != nil {
		return nil, fmt.Errorf("review queue of expert %d: %w", expert, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReviewQueueItem, error) {
		var it ReviewQueueItem
		var k Candidate
		var reasons string
		var confirmed *bool
		var decided *time.Time
		err := r.Scan(&it.ExamID, &it.CandidateID, &k.LastName, &k.FirstName, &k.MiddleName, &it.Qualification, &it.QualificationName,
			&it.SiteID, &it.SiteName, &it.SiteTimeZone, &it.CenterID, &it.CenterName, &it.Start, &it.End, &it.Admission, &it.OpenedAt,
			&confirmed, &reasons, &decided, &it.Marks, &it.Violations, &it.AllMarks, &it.Observations, &it.FlaggedSeconds)
		if err != nil {
			return it, err
		}
		it.CandidateName = k.FullName()
		if confirmed != nil && decided != nil {
			it.Verdict = &Verdict{ExamID: it.ExamID, CandidateID: it.CandidateID, ExpertID: expert, ProcedureConfirmed: *confirmed,
				Reasons: reasons, DecidedAt: *decided}
		}
		switch {
		case it.Verdict != nil:
			it.State = ReviewVerdict
		case it.OpenedAt != nil || it.Marks > 0:
			it.State = ReviewInProgress
		default:
			it.State = ReviewNotStarted
		}
		return it, nil
	})
	if err != nil {
		return nil, fmt.Errorf("review queue of expert %d: %w", expert, err)
	}
	slices.SortStableFunc(out, func(a, b ReviewQueueItem) int { return reviewQueueCompare(a, b, now) })
	return out, nil
}

// reviewQueueCompare orders a queue by what needs attention: first what
// awaits the expert's verdict on an exam that is over (the council decides
// within 14 days of the exam, so the oldest first; begun before not
// begun), then exams under way or to come, then refused candidates (no
// footage to review), then what has a verdict, the latest exam first.
func reviewQueueCompare(a, b ReviewQueueItem, now time.Time) int {
	rank := func(it ReviewQueueItem) int {
		switch {
		case it.State == ReviewVerdict:
			return 4
		case it.Admission == AdmissionRefused:
			return 3
		case it.End.After(now):
			return 2
		case it.State == ReviewInProgress:
			return 0
		}
		return 1
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	c := a.Start.Compare(b.Start)
	if rank(a) == 4 {
		c = -c
	}
	if c != 0 {
		return c
	}
	if c := strings.Compare(a.ExamID, b.ExamID); c != 0 {
		return c
	}
	return strings.Compare(a.CandidateName, b.CandidateName)
}
