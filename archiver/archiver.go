// Package archiver keeps the archive honest and exactly as long as the law
// requires.
//
// For every segment ingest announces (events.SegmentClosed) it checks that
// the stored object has the announced size and SHA-256, verifies the
// stream's hash chain (a break is a chain_break observation and an alert,
// never a silent pass), and gives the segment and its init segment the
// retention they are owed (internal/evidence/retention), applied to the blob store:
// S3 Object Lock in COMPLIANCE mode, or the same rules enforced by a local
// directory. When the registry says what a candidate's exam owes to its
// footage changed (events.RetentionChanged: a result, a certificate issued,
// extended or revoked, an appeal opened or closed), it recomputes every
// object of that candidate-exam, in batches, and seals the candidate-exam
// once its result is recorded (internal/evidence/seal). The transcoder's renditions
// and thumbnails of a segment (events.RenditionReady) are kept exactly as
// the segment's footage is. A sweeper deletes what has
// expired and is under no hold, in two phases, and writes each deletion to
// the audit log with the rule that allowed it. Nothing else deletes: a full
// disk never does.
//
// Every handler is idempotent: the same event twice changes nothing more.
package archiver

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// Consumer groups of the archiver.
const (
	Group          = "archiver"            // on events.TopicSegments
	RetentionGroup = "archiver-retention"  // on events.TopicRetention (v1, no longer consumed)
	RenditionGroup = "archiver-renditions" // on events.TopicRenditions
	FactsGroup     = "archiver-facts"      // on events.TopicRetentionV2
)

// Config configures the archiver.
type Config struct {
	// Retention holds the default retention periods; councils and
	// qualifications override them in the registry.
	Retention retention.Settings `yaml:"retention"`
	// SweepInterval is how often the sweeper runs.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// SweepDelay is how long an expired object stays marked before the
	// sweeper deletes it, if it is still expired then.
	SweepDelay time.Duration `yaml:"sweep_delay"`
	// FactsMaxAge is how old the newest watermark of the copy of the
	// registry's facts may be, by the archiver's clock, for the sweeper to
	// delete: a copy that lags (its consumer behind, the registry's relay
	// down) deletes nothing, whatever the marks' age.
	FactsMaxAge time.Duration `yaml:"facts_max_age"`
	// Batch is how many objects are decided and updated together.
	Batch int `yaml:"batch"`
	// Parallel is how many blob-store calls run at once, and how many
	// segment events (and, apart, rendition events) of different
	// partitions are handled at once on Kafka: one at a time, the checks
	// and retention calls of each (some ten round trips to MinIO and
	// PostgreSQL) kept the archiver behind ten 2 s streams.
	Parallel int `yaml:"parallel"`
	// Node names this archiver in segment checks.
	Node string `yaml:"node"`
	// DocumentInterval is how often documents uploaded since are taken
	// as evidence (locked, sealed).
	DocumentInterval time.Duration `yaml:"document_interval"`
	// LeaseRetry is how often a replica that does not run the sweeper
	// tries to take it over (the sweeper runs on one replica at a time).
	LeaseRetry time.Duration `yaml:"lease_retry"`
}

// DefaultConfig returns the defaults: the retention of issue 5, a sweep every
// hour, deletion a day after the mark, batches of 500, 8 calls at once.
func DefaultConfig() Config {
	return Config{
		Retention:     retention.DefaultSettings(),
		SweepInterval: time.Hour,
		SweepDelay:    24 * time.Hour,
		FactsMaxAge:   15 * time.Minute,
		Batch:         500,
		Parallel:      8,
		Node:          "archiver",

		DocumentInterval: time.Minute,
		LeaseRetry:       10 * time.Second,
	}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, fmt.Errorf("sweep_interval %v is not positive", c.SweepInterval))
	}
	if c.DocumentInterval <= 0 || c.LeaseRetry <= 0 {
		errs = append(errs, fmt.Errorf("document_interval %v and lease_retry %v must be positive", c.DocumentInterval, c.LeaseRetry))
	}
	if c.SweepDelay < 0 {
		errs = append(errs, fmt.Errorf("sweep_delay %v is negative", c.SweepDelay))
	}
	if c.FactsMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("facts_max_age %v is not positive", c.FactsMaxAge))
	}
	if c.Batch <= 0 || c.Parallel <= 0 {
		errs = append(errs, fmt.Errorf("batch %d and parallel %d must be positive", c.Batch, c.Parallel))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("archiver config: %w", err)
	}
	return nil
}

// Blob is the blob store with retention.
type Blob interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (blob.Attrs, error)
	Delete(ctx context.Context, key string) error
	blob.Retainer
}

// Store is what the archiver keeps in its own schema (archiver/store):
// what it decides and does. *store.Store is one.
type Store interface {
	RecordSegmentCheck(ctx context.Context, segmentID string, ok bool, detail, checker string) error
	ArchiveObject(ctx context.Context, key string) (store.ArchiveObject, error)
	ArchiveObjectsByKeys(ctx context.Context, keys []string) ([]store.ArchiveObject, error)
	StreamChain(ctx context.Context, stream string) (store.StreamChain, error)
	SaveArchivedSegment(ctx context.Context, seg, init store.ArchiveObject, chain store.StreamChain) error
	SetArchiveRetention(ctx context.Context, updates []store.RetentionUpdate) error
	ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]store.ArchiveObject, error)
	ArchivedFootage(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]store.ArchiveObject, error)
	SaveArchiveObject(ctx context.Context, o store.ArchiveObject) error
	InitUsage(ctx context.Context, key string) (store.InitUsage, error)
	DueObjects(ctx context.Context, now time.Time, limit int) ([]store.ArchiveObject, error)
	MarkedObjects(ctx context.Context, before time.Time, limit int) ([]store.ArchiveObject, error)
	MarkObject(ctx context.Context, key string, at time.Time) error
	RecordDeletion(ctx context.Context, key string, at time.Time, detail []byte) error
	UnreportedDeletions(ctx context.Context, limit int) ([]store.Deletion, error)
	DeletionReported(ctx context.Context, key string, at time.Time) error
	SaveSeal(ctx context.Context, seal store.Seal, objects ...store.ArchiveObject) error
	LatestSeal(ctx context.Context, exam, candidate string) (store.Seal, error)
	SealObjects(ctx context.Context, exam, candidate string) ([]store.ArchiveObject, error)
	TryLease(ctx context.Context, name string) (*store.Lease, error)
	ReportRecords(ctx context.Context, limit int, now time.Time, publish func(ctx context.Context, key string, value []byte) error) (int, error)
	PruneRecords(ctx context.Context, before time.Time) (int64, error)
	UnreportedRecords(ctx context.Context) (int, error)
	// The copy of the registry's facts (archiver/store/facts.go).
	SaveFacts(ctx context.Context, ev *events.RetentionChangedV2) (bool, error)
	SaveSettings(ctx context.Context, ev *events.RetentionSettingsChanged) (bool, error)
	SaveWatermark(ctx context.Context, w *events.FactsWatermark, now time.Time) error
}

// Registry is what the archiver knows of the registry: the facts it decides
// retention from and the documents that are evidence. The archiver's store
// answers from its own copy, which the registry's events of
// events.TopicRetentionV2 keep (archiver/store/facts.go, docs/NOTES.md,
// Session 6). FactsWatermark says how current that copy is: every fact the
// registry committed before its At is in it.
type Registry interface {
	Facts
	EvidenceDocuments(ctx context.Context, exam, candidate string) ([]facts.EvidenceDocument, error)
	PendingDocumentEvidence(ctx context.Context, limit int) ([]facts.CandidateExamRef, error)
	OverdueEvidence(ctx context.Context, now time.Time, defaultProvisional, floor time.Duration) ([]facts.OverdueEvidence, error)
	FactsWatermark(ctx context.Context) (events.FactsWatermark, error)
}

// Deps are what the archiver talks to.
type Deps struct {
	Bus  bus.Bus // needed by Run, and by Sweep to report deletions
	Blob Blob
	// Store is the archiver's own database.
	Store Store
	// Facts are the registry's facts: the archiver's store, which keeps
	// its copy of them from events.TopicRetentionV2.
	Facts Registry
	// SealKey signs the seals of candidate-exams.
	SealKey  ed25519.PrivateKey
	Log      *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time // time.Now if nil
}

// Service is the archiver.
type Service struct {
	cfg Config
	d   Deps
	decider
	m       metrics
	leading atomic.Bool
	// leaseLosses counts the times this replica found it had lost the
	// sweeper's lease (its database session ended under it).
	leaseLosses atomic.Int64
}

type metrics struct {
	checked     *prometheus.CounterVec
	failures    prometheus.Counter
	breaks      *prometheus.CounterVec
	applied     *prometheus.CounterVec
	applyErrors *prometheus.CounterVec
	swept       *prometheus.CounterVec
	sweptBytes  prometheus.Counter
	sweep       prometheus.Histogram
	seals       prometheus.Counter
	overdue     prometheus.Gauge
	leader      prometheus.Gauge
	records     recordMetrics
}

// New wires the archiver. It starts nothing.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d.Blob == nil:
		return nil, errors.New("archiver: no blob store")
	case d.Store == nil:
		return nil, errors.New("archiver: no store")
	case d.Facts == nil:
		return nil, errors.New("archiver: no registry facts")
	case len(d.SealKey) != ed25519.PrivateKeySize:
		return nil, errors.New("archiver: no seal key")
	case d.Log == nil:
		return nil, errors.New("archiver: no logger")
	case d.Registry == nil:
		return nil, errors.New("archiver: no metrics registry")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	f := promauto.With(d.Registry)
	s := &Service{
		cfg:     cfg,
		d:       d,
		decider: decider{facts: d.Facts, st: d.Store, settings: cfg.Retention, now: d.Now},
		m: metrics{
			checked: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_archiver_segments_checked_total",
				Help: "Segments checked against the blob store, by result (ok, mismatch, missing)."}, []string{"result"}),
			failures: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_archiver_integrity_failures_total",
				Help: "Segments whose stored object is missing or differs from its announcement. Alert on any increase."}),
			breaks: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_archiver_chain_breaks_total",
				Help: "Breaks of a stream's hash chain, by kind (missing, reordered, altered). Alert on any increase."}, []string{"kind"}),
			applied: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_archiver_retention_changes_total",
				Help: "Retention applied to blob-store objects, by change (retain_until, hold, release)."}, []string{"change"}),
			applyErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_archiver_retention_errors_total",
				Help: "Failures to apply retention to the blob store, by operation (retention, hold); retried."}, []string{"op"}),
			swept: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_archiver_sweeper_objects_total",
				Help: "Objects the sweeper acted on, by action (mark, unmark, delete, refused, stale: kept marked because the copy of the registry's facts is older than the mark)."}, []string{"action"}),
			sweptBytes: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_archiver_sweeper_deleted_bytes_total",
				Help: "Bytes of the objects the sweeper deleted."}),
			sweep: f.NewHistogram(prometheus.HistogramOpts{Name: "nokstream_archiver_sweep_seconds",
				Help: "Duration of one sweeper pass.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
			seals: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_archiver_seals_total",
				Help: "Seals of candidate-exams written."}),
			overdue: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_archiver_overdue_evidence",
				Help: "Candidate-exams whose result is still missing after the provisional period, at the last sweep: " +
					"their evidence is held until a result, an appeal's end or the council's disposal. Alert above zero."}),
			leader: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_archiver_sweeper_leader",
				Help: "1 on the replica that runs the sweeper and takes documents (one at a time, by lease), else 0."}),
			records: newRecordMetrics(f),
		},
	}
	return s, nil
}

// Run consumes segment, rendition and facts events (events.TopicRetentionV2:
// the snapshots of the registry's facts it decides from, which also say
// when to decide again) and runs the sweeper until ctx ends. It does not
// consume RetentionChanged v1, which the registry still publishes for
// archivers that read its tables (HandleRetention is kept for them).
func (s *Service) Run(ctx context.Context) error {
	if s.d.Bus == nil {
		return errors.New("archiver: no bus")
	}
	g, ctx := errgroup.WithContext(ctx)
	// Events of different streams are independent (a stream's are in one
	// partition, in order): handled side by side, as replicas would.
	g.Go(func() error {
		return bus.ConsumeParallel(ctx, s.d.Bus, events.TopicSegments, Group, s.cfg.Parallel, s.Handle)
	})
	g.Go(func() error {
		return bus.ConsumeParallel(ctx, s.d.Bus, events.TopicRenditions, RenditionGroup, s.cfg.Parallel, s.HandleRendition)
	})
	g.Go(func() error { return s.d.Bus.Consume(ctx, events.TopicRetentionV2, FactsGroup, s.HandleFacts) })
	g.Go(func() error { return s.RunSweeper(ctx) })
	g.Go(func() error { return s.runRecords(ctx) })
	return g.Wait()
}

// sweeperLease names the lease of the jobs that run on one replica.
const sweeperLease = "archiver.sweeper"

// RunSweeper runs the jobs that must run on one replica at a time — the
// sweeper (every SweepInterval) and the taking of new documents (every
// DocumentInterval) — while it holds their lease, and tries to take the
// lease every LeaseRetry while another replica holds it, until ctx ends.
// A replica that dies releases the lease with its database session, so
// another takes over within LeaseRetry.
func (s *Service) RunSweeper(ctx context.Context) error {
	var lease *store.Lease
	defer func() {
		if lease != nil {
			lease.Release()
		}
		s.setLeader(false)
	}()
	var lastSweep, lastDocs time.Time
	waiting := false
	for ctx.Err() == nil {
		if lease != nil && !lease.Held(ctx) {
			s.d.Log.Warn("lost the sweeper's lease (database session gone); trying to take it again")
			lease.Release()
			lease = nil
			s.setLeader(false)
			s.leaseLosses.Add(1)
		}
		if lease == nil {
			l, err := s.d.Store.TryLease(ctx, sweeperLease)
			switch {
			case err != nil && ctx.Err() == nil:
				s.d.Log.Error("take the sweeper's lease", "err", err)
			case l != nil:
				lease = l
				waiting = false
				lastSweep, lastDocs = time.Time{}, time.Time{}
				s.setLeader(true)
				s.d.Log.Info("this replica runs the sweeper")
			case !waiting:
				waiting = true
				s.d.Log.Info("another replica runs the sweeper; standing by", "retry", s.cfg.LeaseRetry)
			}
		}
		if lease != nil {
			now := time.Now()
			if now.Sub(lastSweep) >= s.cfg.SweepInterval {
				lastSweep, lastDocs = now, now // a sweep takes documents first
				if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
					s.d.Log.Error("sweep failed, will retry at the next pass", "err", err)
				}
			} else if now.Sub(lastDocs) >= s.cfg.DocumentInterval {
				lastDocs = now
				if err := s.takeNewDocuments(ctx); err != nil && ctx.Err() == nil {
					s.d.Log.Error("take new documents failed, will retry", "err", err)
				}
			}
		}
		wait := s.cfg.LeaseRetry
		if lease != nil {
			wait = min(s.cfg.SweepInterval, s.cfg.DocumentInterval, s.cfg.LeaseRetry)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// Leader reports whether this replica runs the sweeper now.
func (s *Service) Leader() bool { return s.leading.Load() }

// LeaseLosses is how many times this replica found that it had lost the
// sweeper's lease and stepped down.
func (s *Service) LeaseLosses() int64 { return s.leaseLosses.Load() }

func (s *Service) setLeader(on bool) {
	s.leading.Store(on)
	if on {
		s.m.leader.Set(1)
	} else {
		s.m.leader.Set(0)
	}
}
