package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"
)

// EvidenceStream is a stream that is evidence for a candidate's exam, with
// what the index holds of it inside the exam window.
type EvidenceStream struct {
	Site   string
	Device string
	// Source says how the stream is evidence: KindRoom (a room camera of
	// the exam's site), KindWebcam or KindScreen (the candidate's
	// workstation).
	Source   string
	Segments int   // indexed segments overlapping the window
	Bytes    int64 // their size
	// First and Last are the start of the first and the end of the last of
	// those segments; zero when there are none.
	First, Last time.Time
}

// StreamID returns "<site>/<device>".
func (e EvidenceStream) StreamID() string { return e.Site + "/" + e.Device }

// maxSegmentSpan bounds how long before a window a segment overlapping it
// may start, so that overlap queries stay on the (…, start_at) indexes of
// the window's partitions. A segment is cut on the first keyframe after 6
// s: a longer one needs a publisher that sends no keyframe for minutes.
// Playback (Segments) is exact whatever the length; the evidence summary
// leaves out a longer segment that starts before the window.
const maxSegmentSpan = 10 * time.Minute

// CandidateEvidence returns every stream that is evidence for candidate's
// exam: the candidate's webcam and screen, and the room cameras of the
// exam's site (its room devices: devices are disabled, never removed),
// webcam first, then screen, then rooms by name, each with what the index
// holds of it in the exam window. A candidate not in the exam is
// ErrNotFound.
func (s *Store) CandidateEvidence(ctx context.Context, exam, candidate string) ([]EvidenceStream, error) {
	out, w, err := s.evidenceStreams(ctx, exam, candidate)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(out))
	for i, e := range out {
		ids[i] = e.StreamID()
	}
	// The window's bounds are parameters, so that only its partitions
	// are read.
	rows, err := s.pool.Query(ctx, `SELECT stream_id, count(*), sum(bytes)::bigint, min(start_at), max(end_at) FROM segments
		WHERE stream_id = ANY($1) AND start_at >= $2 AND start_at < $3 AND end_at > $4
		GROUP BY stream_id`, ids, w.Start.Add(-maxSegmentSpan), w.End, w.Start)
	if err != nil {
		return nil, fmt.Errorf("list evidence of %s in exam %s: %w", candidate, exam, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var e EvidenceStream
		if err := rows.Scan(&id, &e.Segments, &e.Bytes, &e.First, &e.Last); err != nil {
			return nil, fmt.Errorf("list evidence of %s in exam %s: %w", candidate, exam, err)
		}
		for i := range out {
			if out[i].StreamID() == id {
				out[i].Segments, out[i].Bytes, out[i].First, out[i].Last = e.Segments, e.Bytes, e.First, e.Last
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list evidence of %s in exam %s: %w", candidate, exam, err)
	}
	return out, nil
}

// evidenceStreams returns the evidence streams of candidate's exam (see
// CandidateEvidence) without their figures, and the exam window, in one
// query.
func (s *Store) evidenceStreams(ctx context.Context, exam, candidate string) ([]EvidenceStream, Window, error) {
	var site, webcam, screen string
	var rooms []string
	var w Window
	err := s.pool.QueryRow(ctx, `SELECT e.site_id, e.starts_at, e.ends_at, ec.webcam_device, ec.screen_device,
			ARRAY(SELECT d.name FROM devices d WHERE d.site = e.site_id AND d.kind = 'room' ORDER BY d.name)
		FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id WHERE ec.exam_id = $1 AND ec.candidate_id = $2`, exam, candidate).
		Scan(&site, &w.Start, &w.End, &webcam, &screen, &rooms)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, w, fmt.Errorf("list evidence of %s in exam %s: %w", candidate, exam, ErrNotFound)
	}
	if err != nil {
		return nil, w, fmt.Errorf("list evidence of %s in exam %s: %w", candidate, exam, err)
	}
	out := []EvidenceStream{{Site: site, Device: webcam, Source: KindWebcam}, {Site: site, Device: screen, Source: KindScreen}}
	for _, r := range rooms {
		out = append(out, EvidenceStream{Site: site, Device: r, Source: KindRoom})
	}
	return out, w, nil
}

// Window is a time interval [Start, End).
type Window struct {
	Start, End time.Time
}

// ExpertStreamWindows returns the windows of the exams expert is appointed
// to for which stream <site>/<device> is evidence: a room camera of the
// exam's site, or the webcam or screen of one of its candidates. An expert
// may see the stream inside those windows only.
func (s *Store) ExpertStreamWindows(ctx context.Context, expert int64, site, device string) ([]Window, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.starts_at, e.ends_at FROM exams e JOIN exam_experts x ON x.exam_id = e.id AND x.user_id = $1
		WHERE e.site_id = $2 AND (
			EXISTS (SELECT 1 FROM devices d WHERE d.site = $2 AND d.name = $3 AND d.kind = 'room')
			OR EXISTS (SELECT 1 FROM exam_candidates ec WHERE ec.exam_id = e.id AND $3 IN (ec.webcam_device, ec.screen_device)))
		ORDER BY e.starts_at`, expert, site, device)
	if err != nil {
		return nil, fmt.Errorf("list windows of %s/%s for expert %d: %w", site, device, expert, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Window, error) {
		var w Window
		err := r.Scan(&w.Start, &w.End)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("list windows of %s/%s for expert %d: %w", site, device, expert, err)
	}
	return out, nil
}

// CandidateExamFacts is what the archiver needs to know of one candidate's
// exam to keep its evidence as long as the law requires: see EvidenceFacts.
type CandidateExamFacts struct {
	ExamID        string
	CandidateID   string
	CouncilID     string
	CenterID      string
	SiteID        string
	Qualification string
	// ExamStart and ExamEnd are the exam window: room footage of the site
	// inside it is evidence for every candidate of the exam.
	ExamStart, ExamEnd time.Time
	// Link says how the footage asked about is evidence for this
	// candidate-exam: KindRoom, KindWebcam or KindScreen ("" when asked by
	// candidate-exam).
	Link string
	// Webcam and Screen are the candidate's stream ids, "<site>/<device>".
	Webcam, Screen string
	Admission      string // AdmissionPending, AdmissionAdmitted or AdmissionRefused
	Result         ResultFacts
	// Settings are the retention settings in force for the exam's council
	// and qualification.
	Settings RetentionSettings
	// Appeals are every appeal against the candidate's exam, oldest first;
	// an appeal not closed holds the evidence indefinitely.
	Appeals []AppealFacts
	// Revocations are the revocations of the candidate's certificate: the
	// evidence is still kept until its validity date.
	Revocations []CertificateChange
}

// ResultFacts is the state of a candidate-exam's result.
type ResultFacts struct {
	// Kind is "" while no result is recorded, else ResultCertificate or
	// ResultConclusion.
	Kind              string
	CertificateNumber string
	// IssuedOn is the date of the certificate or of the conclusion.
	IssuedOn time.Time
	// ValidUntil is the certificate's validity date, with extensions (it
	// only ever grows); zero for a conclusion.
	ValidUntil time.Time
	RecordedAt time.Time
	Revoked    bool
}

// AppealFacts is the state of one appeal.
type AppealFacts struct {
	ID       string
	Status   string // AppealOpen, AppealDecided or AppealClosed
	OpenedAt time.Time
	ClosedAt *time.Time
}

// OpenAppeals returns the appeals that are not closed: while there is one,
// the evidence is under legal hold.
func (f CandidateExamFacts) OpenAppeals() []AppealFacts {
	var out []AppealFacts
	for _, a := range f.Appeals {
		if a.Status != AppealClosed {
			out = append(out, a)
		}
	}
	return out
}

// EvidenceFacts returns, for the footage of stream <site>/<device> in
// [from, to), every candidate-exam it is evidence for, with what decides
// how long it must be kept. It is the registry's answer to the archiver's
// question "until when must this be kept, and why":
//
//   - Room footage (a room device, or a stream whose segments say source
//     room) is evidence for every candidate of every exam at the site
//     whose window overlaps [from, to), so one room segment serves many
//     candidates and is kept for the longest of their periods.
//   - A webcam or screen stream is evidence for the candidates whose
//     workstation it is in exams at the site overlapping [from, to).
//
// For each candidate-exam the facts carry the result state (no result yet →
// the provisional period of Settings; a conclusion → its date plus the
// appeal window of Settings; a certificate → ValidUntil, with extensions,
// never shortened by a revocation, which is listed in Revocations), the
// appeals (any not closed is a legal hold), and the settings in force for
// the council and qualification. Footage that is evidence for nothing
// answers an empty list: it is kept SiteRetentionSettings(site).UnlinkedDays.
// The answer is ordered by exam start, exam and candidate.
func (s *Store) EvidenceFacts(ctx context.Context, site, device string, from, to time.Time) ([]CandidateExamFacts, error) {
	source, err := s.streamSource(ctx, site, device)
	if err != nil {
		return nil, fmt.Errorf("evidence facts of %s/%s: %w", site, device, err)
	}
	var rows pgx.Rows
	if source == KindRoom {
		rows, err = s.pool.Query(ctx, `SELECT ec.exam_id, ec.candidate_id, 'room' FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id
			WHERE e.site_id = $1 AND e.starts_at < $3 AND e.ends_at > $2 ORDER BY e.starts_at, ec.exam_id, ec.candidate_id`, site, from, to)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT ec.exam_id, ec.candidate_id, CASE WHEN ec.webcam_device = $2 THEN 'webcam' ELSE 'screen' END
			FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id
			WHERE ec.site_id = $1 AND $2 IN (ec.webcam_device, ec.screen_device) AND e.starts_at < $4 AND e.ends_at > $3
			ORDER BY e.starts_at, ec.exam_id, ec.candidate_id`, site, device, from, to)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence facts of %s/%s: %w", site, device, err)
	}
	type link struct{ exam, cand, how string }
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (link, error) {
		var l link
		err := r.Scan(&l.exam, &l.cand, &l.how)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("evidence facts of %s/%s: %w", site, device, err)
	}
	out := make([]CandidateExamFacts, 0, len(links))
	for _, l := range links {
		f, err := s.CandidateExamFacts(ctx, l.exam, l.cand)
		if err != nil {
			return nil, fmt.Errorf("evidence facts of %s/%s: %w", site, device, err)
		}
		f.Link = l.how
		out = append(out, f)
	}
	return out, nil
}

// streamSource returns what stream <site>/<device> records: the kind of its
// device, or for a stream without a registered device, the source its
// segments announce (KindRoom if there are none).
func (s *Store) streamSource(ctx context.Context, site, device string) (string, error) {
	var kind string
	err := s.pool.QueryRow(ctx, `SELECT kind FROM devices WHERE site = $1 AND name = $2`, site, device).Scan(&kind)
	if err == nil {
		return kind, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	err = s.pool.QueryRow(ctx, `SELECT source FROM segments WHERE stream_id = $1 LIMIT 1`, site+"/"+device).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return KindRoom, nil
	}
	return kind, err
}

// CandidateExamFacts returns the retention facts of candidate's exam (see
// EvidenceFacts), or ErrNotFound.
func (s *Store) CandidateExamFacts(ctx context.Context, exam, candidate string) (CandidateExamFacts, error) {
	f := CandidateExamFacts{ExamID: exam, CandidateID: candidate}
	var kind, number *string
	var issued, valid, recorded *time.Time
	var revoked *bool
	err := s.pool.QueryRow(ctx, `SELECT e.council_id, e.center_id, e.site_id, e.qualification_code, e.starts_at, e.ends_at,
			ec.webcam_device, ec.screen_device, ec.admission,
			r.kind, r.certificate_number, r.issued_on, r.valid_until, r.recorded_at, r.revoked_at IS NOT NULL
		FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id JOIN centers c ON c.id = e.center_id
		LEFT JOIN results r ON r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id AND r.state IN `+registerStates+`
		WHERE ec.exam_id = $1 AND ec.candidate_id = $2`, exam, candidate).
		Scan(&f.CouncilID, &f.CenterID, &f.SiteID, &f.Qualification, &f.ExamStart, &f.ExamEnd, &f.Webcam, &f.Screen, &f.Admission,
			&kind, &number, &issued, &valid, &recorded, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, ErrNotFound)
	}
	if err != nil {
		return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, err)
	}
	f.Webcam, f.Screen = f.SiteID+"/"+f.Webcam, f.SiteID+"/"+f.Screen
	if kind != nil {
		f.Result.Kind, f.Result.IssuedOn, f.Result.RecordedAt = *kind, *issued, *recorded
		f.Result.Revoked = revoked != nil && *revoked
		if number != nil {
			f.Result.CertificateNumber = *number
		}
		if valid != nil {
			f.Result.ValidUntil = *valid
		}
	}
	if f.Settings, err = s.RetentionSettingsOf(ctx, f.CouncilID, f.Qualification); err != nil {
		return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, status, opened_at, closed_at FROM appeals WHERE exam_id = $1 AND candidate_id = $2 ORDER BY opened_at, id`,
		exam, candidate)
	if err != nil {
		return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, err)
	}
	f.Appeals, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AppealFacts, error) {
		var a AppealFacts
		err := r.Scan(&a.ID, &a.Status, &a.OpenedAt, &a.ClosedAt)
		return a, err
	})
	if err != nil {
		return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, err)
	}
	f.Revocations = []CertificateChange{}
	if f.Result.CertificateNumber != "" {
		rows, err := s.pool.Query(ctx, `SELECT change, valid_until, reason, coalesce(changed_by, 0), changed_at FROM certificate_changes
			WHERE certificate_number = $1 AND change = 'revoked' ORDER BY id`, f.Result.CertificateNumber)
		if err != nil {
			return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, err)
		}
		f.Revocations, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (CertificateChange, error) {
			var c CertificateChange
			err := r.Scan(&c.Change, &c.ValidUntil, &c.Reason, &c.ChangedBy, &c.ChangedAt)
			return c, err
		})
		if err != nil {
			return CandidateExamFacts{}, fmt.Errorf("facts of %s in exam %s: %w", candidate, exam, err)
		}
	}
	return f, nil
}

// MediaRef is one segment of an evidence stream, as a player, a bundle or
// a retention pass needs it.
type MediaRef struct {
	StreamID  string
	Sequence  int64
	Start     time.Time
	Duration  float64 // seconds
	ObjectKey string
	InitKey   string
	Bytes     int64
	SHA256    string
}

// ExamMedia returns every indexed segment of every stream that is evidence
// for candidate's exam (see CandidateEvidence) inside the exam window, by
// stream (in the order of their ids) and sequence. A candidate not in the
// exam is ErrNotFound.
//
// A 4-hour exam is some 7 200 rows, so what each row costs counts
// (BenchmarkSegmentIndex, exam-media). Each stream is one query on the
// window's partitions, examMediaQueries of them side by side on their own
// connections: one query of all streams kept one PostgreSQL backend and
// one goroutine busy in turn (an index-only scan, then decoding its rows)
// while the other core idled. Each query orders by the index,
// (stream_id, start_at), so that PostgreSQL sends the rows as its
// index-only scan finds them: ordering by sequence made it sort them all
// first, most of its time (an execution of 9 ms instead of 2 ms at 10 M
// rows). The order by sequence is checked here, and made for a stream
// whose sequence does not follow its start times (sortRunsBySequence).
// Decoding the rows is then most of the rest, and what it allocates drives
// the collector, whose pauses were the tail: so the streams' rows are
// scanned into one array sized for the window, and the init keys, the same
// for run after run of rows, are shared strings rather than one copy a
// row.
func (s *Store) ExamMedia(ctx context.Context, exam, candidate string) ([]MediaRef, error) {
	streams, w, err := s.evidenceStreams(ctx, exam, candidate)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(streams))
	for i, e := range streams {
		ids[i] = e.StreamID()
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// One array for all: each stream's query appends into its own region,
	// room for a segment every typicalSegment of the window; the regions
	// are then moved together. A stream with more rows than its region
	// (short segments) grows a slice of its own, copied in at the end.
	per := examMediaRegion(w)
	if per*len(ids) > 1<<16 {
		per = 0
	}
	buf := make([]MediaRef, len(ids)*per)
	each := make([][]MediaRef, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(examMediaQueries)
	for i, id := range ids {
		g.Go(func() (err error) {
			each[i], err = s.streamMedia(gctx, id, w, buf[i*per:i*per:(i+1)*per])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list media of %s in exam %s: %w", candidate, exam, err)
	}
	n := 0
	inPlace := per > 0
	for i, m := range each {
		n += len(m)
		inPlace = inPlace && (len(m) == 0 || &m[0] == &buf[i*per])
	}
	if !inPlace {
		out := make([]MediaRef, 0, n)
		for _, m := range each {
			out = append(out, m...)
		}
		return out, nil
	}
	// Each region moves down to where the last one ended: never past its
	// own start, so what it covers was moved already (append copies with
	// memmove).
	out := buf[:0]
	for _, m := range each {
		out = append(out, m...)
	}
	return out[:n:n], nil
}

// examMediaRegion is how many rows of a stream ExamMedia makes room for:
// a segment every typicalSegment of window w, and a few that start before
// it.
var examMediaRegion = func(w Window) int { return max(0, int(w.End.Sub(w.Start)/typicalSegment)) + 8 }

// examMediaQueries is how many of an exam's streams ExamMedia queries at
// once: a webcam, a screen and a room camera, each on a connection of the
// pool (4 by default), one left for the other requests.
const examMediaQueries = 3

// streamMedia appends the segments of stream id in window w, by sequence,
// to out.
func (s *Store) streamMedia(ctx context.Context, id string, w Window, out []MediaRef) ([]MediaRef, error) {
	start, end := w.Start, w.End
	// segment_rows itself, not the view: its index holds every column
	// read, and the keys are derived here (segments_read.go).
	rows, err := s.pool.Query(ctx, `SELECT sequence, start_at, duration, segment_id, object_key, profile_id, bytes, sha256, hashes_text
		FROM segment_rows WHERE stream_id = $1 AND start_at >= $2 AND start_at < $3 AND end_at > $4
		ORDER BY start_at`, id, start.Add(-maxSegmentSpan), end, start)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", id, err)
	}
	first := len(out)
	var refs profileRefs
	err = func() error {
		defer rows.Close()
		// Each row is scanned into m, through the same destinations, then
		// appended; the text columns point into the connection's buffer
		// until the next row, and are made strings by rowStrings.
		m := MediaRef{StreamID: id}
		var segment, object, sha pgtype.DriverBytes
		var hashes []string // a text[] into DriverBytes is planned again at every row
		var profile int32
		d := derivedKeys{strs: newRowStrings(0)}
		dest := []any{&m.Sequence, &m.Start, &m.Duration, &segment, &object, &profile, &m.Bytes, &sha, &hashes}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			if m.SHA256, err = d.hash(0, sha, hashes); err != nil {
				return err
			}
			// The segment id only makes the key: read where it lies, not
			// copied (objectKey keeps nothing of it).
			m.ObjectKey = d.objectKey(object, id, m.Start, m.Sequence, unsafe.String(unsafe.SliceData(segment), len(segment))) //nolint:gosec // audited: read only, before the next row
			refs.add(profile)
			out = append(out, m)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", id, err)
	}
	if err := refs.resolve(ctx, s, func(i int, p *segmentProfile) { out[first+i].InitKey = p.initKey }); err != nil {
		return nil, fmt.Errorf("stream %s: %w", id, err)
	}
	sortRunsBySequence(out)
	return out, nil
}

// typicalSegment is how long a segment usually is: it is cut on the first
// keyframe after 6 s.
const typicalSegment = 6 * time.Second

// sortRunsBySequence orders each stream's run of media (its rows are
// together: the query orders by stream first) by sequence, equal sequences
// keeping their order. A stream's sequence follows its start times, so a
// run is normally in order already, which is all this checks.
func sortRunsBySequence(media []MediaRef) {
	bySequence := func(a, b MediaRef) int { return cmp.Compare(a.Sequence, b.Sequence) }
	for i := 0; i < len(media); {
		j := i + 1
		for j < len(media) && media[j].StreamID == media[i].StreamID {
			j++
		}
		if run := media[i:j]; !slices.IsSortedFunc(run, bySequence) {
			slices.SortStableFunc(run, bySequence)
		}
		i = j
	}
}
