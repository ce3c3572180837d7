// Package api is the registry's HTTP API: login and sessions, the segment
// index of a stream, HLS playback (RFC 8216) of recorded streams, and the
// media bytes themselves, with every access to media in the audit log.
//
// Routes (JSON unless said otherwise; errors are {"error": "..."}):
//
//	POST /api/v1/auth/login                              {"login","password"} → {"token","must_change_password","expires_at","password_age_days"}
//	POST /api/v1/auth/password                           {"old_password","new_password"} → a new session, as login
//	POST /api/v1/auth/logout                             ends the session
//	POST /api/v1/links                                   {"path"} → {"url","expires_at"}: a signed URL for a stream or media path
//	GET  /api/v1/streams/{site}/{device}/segments        ?from=&to= → the indexed segments
//	GET  /api/v1/streams/{site}/{device}/playlist.m3u8   ?from=&to=&variant= → an HLS VOD playlist, raw (default) or review
//	GET  /api/v1/streams/{site}/{device}/master.m3u8     ?from=&to= → an HLS master playlist offering the review and raw variants
//	GET  /api/v1/streams/{site}/{device}/thumbnails.vtt  ?from=&to= → the WebVTT track of scrubbing thumbnails
//	GET  /api/v1/streams/{site}/{device}/observations    ?from=&to= → what was observed (gaps, outages, …)
//	GET  /api/v1/media/{key...}                          a segment or init segment, with Range support
//	GET  /api/v1/keys/seal                               the archiver's public key (evidence.go; with Deps.SealKey)
//	GET  /api/v1/exams/{exam}/candidates/{candidate}/evidence  ?purpose= → the evidence bundle, a tar (evidence.go)
//	POST /api/v1/evidence/verify                         a bundle as the body → its verification report (evidence.go)
//	GET  /healthz                                        liveness only: metrics and readiness are on the admin address
//
// and the routes of the НОК domain (domain.go): organisations,
// qualifications, candidates and their documents, exams with their
// candidates, admissions, exam passwords and evidence, results and
// certificates, protocols, council decisions and NARK verifications,
// deadlines, appeals, expert reviews, the candidate's exam login, and
// /api/v1/openapi.json, which describes every route.
//
// Every route but login needs "Authorization: Bearer <token>". The GET
// routes also accept a signed query instead (exp, uid, sig; see
// Server.SignedURL), so that players such as ffplay, VLC or hls.js, which
// send no headers, can fetch a playlist and the segments it lists; the URLs
// in a playlist carry their own signatures. A user whose password must be
// changed may only change it or log out; everything else answers 403.
//
// Every playlist, segment list and media access is written to the audit log
// with the caller, the remote address and the purpose declared in the
// X-Purpose header or the purpose query parameter. Who sees what is decided
// in one place, scope.go (visible, scopeOf and canSee): what a caller may
// not see answers 404, what it sees but its role may not change 403.
//
// from and to are RFC 3339 times and select the segments that overlap
// [from, to). to defaults to now, and from to one hour before to; a range
// may span at most a day (MaxRange).
package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/registry/store"
)

// Range limits of the stream routes.
const (
	// DefaultRange is how far before to a range starts when from is not
	// given.
	DefaultRange = time.Hour
	// MaxRange is the longest range one request may ask for.
	MaxRange = 24 * time.Hour
)

// Secret is key material. It prints, logs and marshals as "<redacted>";
// UnmarshalText takes the raw bytes of the text.
type Secret []byte

const redacted = "<redacted>"

// String returns "<redacted>".
func (Secret) String() string { return redacted }

// GoString returns "<redacted>".
func (Secret) GoString() string { return redacted }

// Format prints "<redacted>" for every verb, %x included.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue logs "<redacted>".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "<redacted>", so a printed configuration shows no
// secret.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText sets the secret to a copy of text.
func (s *Secret) UnmarshalText(text []byte) error {
	*s = append(Secret(nil), text...)
	return nil
}

// Config configures the API.
type Config struct {
	// SigningKey is the HMAC-SHA256 key of signed URLs, at least 32 bytes.
	// Every registry replica needs the same key, and changing it voids the
	// signed URLs handed out.
	SigningKey Secret `yaml:"signing_key"`
	// TokenTTL is how long a session token from login lasts.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// LinkTTL is how long a signed URL lasts: those from POST /api/v1/links
	// and those in segment lists. The media URLs in a playlist last LinkTTL
	// plus the playlist's duration, so that watching it at normal speed
	// never runs into an expired segment URL.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// PasswordMaxAge is the age of a password past which the login answer
	// carries a reminder to change it.
	PasswordMaxAge time.Duration `yaml:"password_max_age"`
	// Login limits (limits.go). Attempts are counted before the password
	// is checked, and one over a limit answers 429 with Retry-After
	// without computing a hash. LoginFailuresPerLoginAddress failures of
	// one login from one client address are free, and each further one
	// doubles the wait, from LoginBackoff up to LoginFailureWindow.
	// LoginFailuresPerAddress is the most failures from one address in the
	// window, whatever the login. LoginFailuresPerLogin is a ceiling of
	// one login from every address in the window: past it, addresses the
	// login never succeeded from are refused until the window passes,
	// and those it has succeeded from get one attempt per
	// LoginKnownInterval, so strangers cannot lock a user out. Exam logins
	// count per address only.
	LoginFailuresPerLoginAddress int           `yaml:"login_failures_per_login_address"`
	LoginFailuresPerLogin        int           `yaml:"login_failures_per_login"`
	LoginFailuresPerAddress      int           `yaml:"login_failures_per_address"`
	LoginFailureWindow           time.Duration `yaml:"login_failure_window"`
	LoginBackoff                 time.Duration `yaml:"login_backoff"`
	LoginKnownInterval           time.Duration `yaml:"login_known_interval"`
	// AuthConcurrency is how many password hashes (64 MiB and a core
	// each) logins and password changes compute at once; others wait up
	// to AuthQueueWait, then answer 503 with Retry-After.
	AuthConcurrency int           `yaml:"auth_concurrency"`
	AuthQueueWait   time.Duration `yaml:"auth_queue_wait"`
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed, for login limits and the audit log. From any other
	// address the header is ignored.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// OutboxInterval is how often Run looks for events to publish that a
	// change left in the outbox, at the latest.
	OutboxInterval time.Duration `yaml:"outbox_interval"`
	// MaxDocumentBytes is the largest scanned document or protocol that may
	// be uploaded.
	MaxDocumentBytes int64 `yaml:"max_document_bytes"`
	// MaxBundleBytes is the largest evidence bundle POST
	// /api/v1/evidence/verify reads. The bundle is checked as it streams
	// in, so this bounds the time a request may take, not memory.
	MaxBundleBytes int64 `yaml:"max_bundle_bytes"`
	// VerifyConcurrency is how many evidence bundles are verified at once.
	// Each holds its manifest (up to 64 MiB) and what parsing it takes
	// (~400 MiB for a hostile one of that size) and a core to hash; one
	// more is answered 503 with Retry-After.
	VerifyConcurrency int `yaml:"verify_concurrency"`
	// VerifyIdleTimeout is how long a bundle being verified may send
	// nothing before the verification ends (408), freeing its slot.
	VerifyIdleTimeout time.Duration `yaml:"verify_idle_timeout"`
	// RetentionFloors are the legal floors of retention periods, the
	// archiver's (retention.DefaultFloors): a council's or qualification's
	// period below one is refused with 422 naming it.
	RetentionFloors retention.Floors `yaml:"retention_floors"`
}

// DefaultConfig returns the defaults: sessions of 12 hours, signed URLs of
// 1 hour, a password reminder after 90 days, 5 free failed logins per
// login and address then a wait from 1 minute doubling, 20 failures per
// address and 10 per login in 15 minutes, one attempt per 30 seconds from
// a known address over the login's ceiling, as many password hashes at
// once as there are CPUs with a 2-second queue, no trusted proxies, the
// outbox checked every second, documents
// of up to 20 MiB, and evidence bundles of up to 64 GiB to verify (a
// candidate's webcam, screen and room camera at 8 Mbit/s together make
// about 3.6 GB an hour of exam), two at once, each sending something every
// 30 s. There is no default signing key.
func DefaultConfig() Config {
	return Config{TokenTTL: 12 * time.Hour, LinkTTL: time.Hour, PasswordMaxAge: 90 * 24 * time.Hour,
		LoginFailuresPerLoginAddress: 5, LoginFailuresPerLogin: 10, LoginFailuresPerAddress: 20,
		LoginFailureWindow: 15 * time.Minute, LoginBackoff: time.Minute, LoginKnownInterval: 30 * time.Second,
		AuthConcurrency: runtime.NumCPU(), AuthQueueWait: 2 * time.Second,
		OutboxInterval: time.Second, MaxDocumentBytes: 20 << 20, MaxBundleBytes: 64 << 30, VerifyConcurrency: 2, VerifyIdleTimeout: 30 * time.Second,
		RetentionFloors: retention.DefaultFloors()}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	switch {
	case len(c.SigningKey) < 32:
		return fmt.Errorf("registry api: signing_key has %d bytes, want at least 32", len(c.SigningKey))
	case c.TokenTTL <= 0:
		return fmt.Errorf("registry api: token_ttl %v is not positive", c.TokenTTL)
	case c.LinkTTL <= 0:
		return fmt.Errorf("registry api: link_ttl %v is not positive", c.LinkTTL)
	case c.PasswordMaxAge <= 0:
		return fmt.Errorf("registry api: password_max_age %v is not positive", c.PasswordMaxAge)
	case c.LoginFailuresPerLoginAddress <= 0 || c.LoginFailuresPerLogin <= 0 || c.LoginFailuresPerAddress <= 0 || c.LoginFailureWindow <= 0:
		return fmt.Errorf("registry api: login failure limits %d/%d/%d in %v must be positive",
			c.LoginFailuresPerLoginAddress, c.LoginFailuresPerLogin, c.LoginFailuresPerAddress, c.LoginFailureWindow)
	case c.LoginBackoff <= 0 || c.LoginKnownInterval <= 0:
		return fmt.Errorf("registry api: login_backoff %v and login_known_interval %v must be positive", c.LoginBackoff, c.LoginKnownInterval)
	case c.AuthConcurrency <= 0 || c.AuthQueueWait <= 0:
		return fmt.Errorf("registry api: auth_concurrency %d and auth_queue_wait %v must be positive", c.AuthConcurrency, c.AuthQueueWait)
	case c.LinkTTL > MaxLinkTTL:
		return fmt.Errorf("registry api: link_ttl %v is longer than %v", c.LinkTTL, MaxLinkTTL)
	case c.OutboxInterval <= 0:
		return fmt.Errorf("registry api: outbox_interval %v is not positive", c.OutboxInterval)
	case c.MaxDocumentBytes <= 0:
		return fmt.Errorf("registry api: max_document_bytes %d is not positive", c.MaxDocumentBytes)
	case c.MaxBundleBytes <= 0:
		return fmt.Errorf("registry api: max_bundle_bytes %d is not positive", c.MaxBundleBytes)
	case c.VerifyConcurrency <= 0 || c.VerifyIdleTimeout <= 0:
		return fmt.Errorf("registry api: verify_concurrency %d and verify_idle_timeout %v must be positive", c.VerifyConcurrency, c.VerifyIdleTimeout)
	}
	return nil
}

// Store is everything the API asks of the registry's database, the union
// of its route groups' stores; *store.Store is one. Each route group
// reaches the database through its own small interface (stores), with
// only the methods its routes call.
type Store interface {
	Ping(ctx context.Context) error
	accountStore     // accounts.go
	appealStore      // appeals.go
	authStore        // auth.go
	candidateStore   // candidates.go
	consentStore     // consent.go
	domainStore      // domain.go
	examLoginStore   // examlogin.go
	examStore        // exams.go
	identityStore    // identity.go
	integrityStore   // integrity.go
	limitStore       // limits.go
	mediaStore       // mediaread.go
	observationStore // observations.go
	orgStore         // orgs.go
	queueStore       // queue.go
	resultStore      // results.go
	reviewStore      // review.go
	markStore        // reviews.go
	streamStore      // streams.go
	workflowStore    // workflow.go
	evidenceStore    // evidence.go
	scopeLookups     // scope.go
}

// stores are the route groups' views of the registry's database.
type stores struct {
	accounts     accountStore
	appeals      appealStore
	auth         authStore
	candidates   candidateStore
	consent      consentStore
	domain       domainStore
	examLogin    examLoginStore
	exams        examStore
	identity     identityStore
	integrity    integrityStore
	limits       limitStore
	media        mediaStore
	observations observationStore
	orgs         orgStore
	queue        queueStore
	results      resultStore
	review       reviewStore
	marks        markStore
	streams      streamStore
	workflow     workflowStore
	evidence     evidenceStore
	scope        scopeLookups
	// mediaAudit is nil when the store cannot aggregate media accesses:
	// each fetch is then its own audit row.
	mediaAudit mediaAuditStore
}

// newStores returns the views of st.
func newStores(st Store) stores {
	db := stores{
		accounts:     st,
		appeals:      st,
		auth:         st,
		candidates:   st,
		consent:      st,
		domain:       st,
		examLogin:    st,
		exams:        st,
		identity:     st,
		integrity:    st,
		limits:       st,
		media:        st,
		observations: st,
		orgs:         st,
		queue:        st,
		results:      st,
		review:       st,
		marks:        st,
		streams:      st,
		workflow:     st,
		evidence:     st,
		scope:        st,
	}
	db.mediaAudit, _ = st.(mediaAuditStore)
	return db
}

// Blobs reads media objects and stores uploaded documents; every
// blob.Store is one.
type Blobs interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

// Deps are the API's collaborators.
type Deps struct {
	Store    Store
	Blob     Blobs
	Log      *slog.Logger
	Registry *prometheus.Registry // metrics are registered here (the admin address serves them)
	Health   *obs.Health          // New adds a "postgres" check of Store (the admin address serves /readyz)
	Now      func() time.Time     // time.Now if nil
	// Bus receives the events that changes publish (RetentionChanged on
	// appeals and certificates), through the outbox that Run relays. Nil
	// keeps them in the outbox until a registry with a bus relays them.
	Bus bus.Publisher
	// SealKey is the archiver's Ed25519 key: with it, the API serves its
	// public half and exports evidence bundles signed by it (evidence.go).
	// Nil leaves those routes out.
	SealKey ed25519.PrivateKey
}

// Server serves the API.
type Server struct {
	cfg   Config
	db    stores
	blobs Blobs
	log   *slog.Logger
	now   func() time.Time
	mux   *http.ServeMux
	bus   bus.Publisher
	// sealKey signs evidence bundles; nil without the evidence routes.
	sealKey ed25519.PrivateKey
	// routes are the patterns registered, in order: the OpenAPI document
	// must describe each.
	routes []string
	// outboxKick wakes Run's relay after a change wrote to the outbox.
	outboxKick chan struct{}
	// lastWatermark is the facts watermark last published (Run only).
	lastWatermark events.FactsWatermark
	// hashSlots bounds the password hashes of logins (AuthConcurrency).
	hashSlots chan struct{}
	// verifySlots bounds the bundles verified at once (VerifyConcurrency).
	verifySlots chan struct{}
	// serving is the media route's caches and audit (mediaread.go).
	serving *mediaServing

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	published *prometheus.CounterVec
	// loginRefused counts logins refused before a password check.
	loginRefused *prometheus.CounterVec
}

// New returns a Server. It starts nothing: the caller serves Handler.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Store == nil:
		return nil, errors.New("registry api: no store")
	case deps.Blob == nil:
		return nil, errors.New("registry api: no blob store")
	case deps.Log == nil:
		return nil, errors.New("registry api: no logger")
	case deps.Registry == nil:
		return nil, errors.New("registry api: no metrics registry")
	case deps.Health == nil:
		return nil, errors.New("registry api: no health checks")
	}
	s := &Server{
		cfg:   cfg,
		db:    newStores(deps.Store),
		blobs: deps.Blob,
		log:   deps.Log,
		now:   deps.Now,
		mux:   http.NewServeMux(),
		bus:   deps.Bus,

		sealKey: deps.SealKey,

		outboxKick:  make(chan struct{}, 1),
		hashSlots:   make(chan struct{}, cfg.AuthConcurrency),
		verifySlots: make(chan struct{}, cfg.VerifyConcurrency),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_registry_outbox_events_total",
			Help: "Events of the registry's outbox, by outcome: published, or failed (kept for the next try).",
		}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_registry_http_requests_total",
			Help: "HTTP requests answered by the registry API, by route pattern and status code.",
		}, []string{"route", "code"}),
		loginRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nokstream_registry_login_refusals_total",
			Help: "Logins and password changes refused without a password check, by reason: throttled_login_address, throttled_login, throttled_address (429), busy (503).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nokstream_registry_http_request_seconds",
			Help:    "Time to answer an HTTP request of the registry API, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.serving = newMediaServing(s)
	collectors := []prometheus.Collector{s.requests, s.duration, s.published, s.loginRefused}
	if h, ok := deps.Store.(interface{ PasswordHashes() uint64 }); ok {
		collectors = append(collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nokstream_registry_password_hashes_total",
			Help: "argon2id password hashes computed (64 MiB and a core each), to check or to set a password.",
		}, func() float64 { return float64(h.PasswordHashes()) }))
	}
	collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nokstream_registry_evidence_verifications",
		Help: "Evidence bundles being verified (POST /api/v1/evidence/verify), at most verify_concurrency.",
	}, func() float64 { return float64(len(s.verifySlots)) }))
	for _, c := range collectors {
		if err := deps.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("registry api: register metrics: %w", err)
		}
	}
	deps.Health.Add("postgres", deps.Store.Ping)
	obs.RegisterLiveness(s.mux)

	s.route("POST /api/v1/auth/login", authNone, s.login)
	s.route("POST /api/v1/auth/password", authPasswordChange, s.changePassword)
	s.route("POST /api/v1/auth/logout", authPasswordChange, s.logout)
	s.route("POST /api/v1/links", authBearer, s.createLink)
	s.route("GET /api/v1/streams/{site}/{device}/segments", authBearerOrSigned, s.segments)
	s.route("GET /api/v1/streams/{site}/{device}/playlist.m3u8", authBearerOrSigned, s.playlist)
	s.route("GET /api/v1/streams/{site}/{device}/master.m3u8", authBearerOrSigned, s.master)
	s.route("GET /api/v1/streams/{site}/{device}/thumbnails.vtt", authBearerOrSigned, s.thumbnails)
	s.route("GET /api/v1/streams/{site}/{device}/observations", authBearerOrSigned, s.observations)
	s.route("GET /api/v1/media/{key...}", authBearerOrSigned, s.media)
	s.domainRoutes()
	s.evidenceRoutes()
	s.queueRoutes()
	return s, nil
}

// Handler returns the HTTP handler of every route. Requests that match no
// route get a JSON 404 or 405.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No answer is to be sniffed into another type: a document or a
		// segment uploaded as one thing never runs as a page.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, pattern := s.mux.Handler(r); pattern != "" {
			s.mux.ServeHTTP(w, r)
			return
		}
		// The mux answers in plain text; keep its status and headers
		// (Allow, Location), and answer in JSON.
		start := time.Now()
		rec := &headerOnly{header: w.Header()}
		s.mux.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusNotFound
		}
		writeError(w, code, http.StatusText(code))
		s.observe("unmatched", code, start)
	})
}

// Streaming reports whether r is a request that streams by nature and so
// gets no read or write deadline from the HTTP server
// (httpserver.New): a media object, an evidence bundle to download or to
// verify. Every other route answers within the server's deadlines.
//
// Only the methods of those routes stream: another method's answer (a 405)
// gets the deadlines, and so does a refused request's unread body (route).
func Streaming(r *http.Request) bool {
	p := r.URL.Path
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	return (get && strings.HasPrefix(p, "/api/v1/media/")) || (r.Method == http.MethodPost && p == "/api/v1/evidence/verify") ||
		(get && strings.HasPrefix(p, "/api/v1/exams/") && strings.HasSuffix(p, "/evidence"))
}

// headerOnly keeps the status and headers of a response and drops its body.
type headerOnly struct {
	header http.Header
	code   int
}

func (h *headerOnly) Header() http.Header         { return h.header }
func (h *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerOnly) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}

// authMode says how a route authenticates its caller.
type authMode int

const (
	authNone           authMode = iota // anyone
	authBearer                         // a session token
	authBearerOrSigned                 // a session token or a signed query
	authPasswordChange                 // a session token, even while the password must be changed
	authCandidate                      // a candidate's exam token (POST /api/v1/exam/login)
	authPolicy                         // a session token, before the privacy policy is accepted (policy.go)
)

// caller is who makes a request.
type caller struct {
	user  store.User
	token string // the session token, "" for a signed request
	// session is the id of the session: of the token, or the one a
	// signed request's URL was made in. Signed URLs made for the caller
	// name it.
	session int64
	// exam is the exam session of a candidate (authCandidate); user is
	// then the zero User.
	exam *store.ExamSession
}

// handlerFunc handles a request of an authenticated caller (nil for
// authNone). An *apiError is answered as is; any other error is a 500.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// apiError is an error answered with its status and message.
type apiError struct {
	status int
	msg    string
	extra  map[string]any // more members of the JSON answer, beside "error"
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

// errorf returns an *apiError.
func errorf(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// mustChangePassword is the answer to a user who must change the password
// first.
const mustChangePassword = "password change required: POST /api/v1/auth/password"

// route registers h for pattern, behind authentication and metrics.
func (s *Server) route(pattern string, mode authMode, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		err := s.serve(sw, r, mode, h)
		if err != nil && r.ContentLength != 0 && Streaming(r) {
			// A streaming route has no read deadline (httpserver.New),
			// and the server reads what is left of a body before it
			// answers: a refused request's body (a stranger's, before
			// authentication) is not waited for. The connection closes
			// after the answer.
			w.Header().Set("Connection", "close")
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}
		if err != nil {
			var ae *apiError
			switch {
			case errors.As(err, &ae):
				if ae.status == http.StatusUnauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="nokstream"`)
				}
				writeErrorWith(sw, ae.status, ae.msg, ae.extra)
			case r.Context().Err() != nil:
				// The client went away; nobody reads an answer. 499 is
				// nginx's code for it, for the metrics.
				if sw.code == 0 {
					sw.code = 499
				}
			default:
				s.log.Error("serve request", "route", pattern, "err", err)
				if sw.code == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error")
				}
			}
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.observe(pattern, code, start)
	})
}

// serve authenticates the caller as mode requires and calls h.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, mode authMode, h handlerFunc) error {
	if err := checkText(r); err != nil {
		return err
	}
	if mode == authNone {
		return h(w, r, nil)
	}
	if mode == authCandidate {
		c, err := s.authenticateCandidate(r)
		if err != nil {
			return err
		}
		return h(w, r, c)
	}
	c, err := s.authenticate(r, mode == authBearerOrSigned)
	if err != nil {
		return err
	}
	if c.user.MustChangePassword && mode != authPasswordChange {
		return errorf(http.StatusForbidden, mustChangePassword)
	}
	if mode != authPasswordChange && mode != authPolicy && c.user.PolicyVersion != PrivacyPolicyVersion {
		return errPolicyRequired
	}
	return h(w, r, c)
}

func (s *Server) observe(route string, code int, start time.Time) {
	s.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeError answers {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeErrorWith answers {"error": msg} and the members of extra with
// status.
func writeErrorWith(w http.ResponseWriter, status int, msg string, extra map[string]any) {
	if len(extra) == 0 {
		writeError(w, status, msg)
		return
	}
	v := map[string]any{"error": msg}
	for k, x := range extra {
		v[k] = x
	}
	writeJSON(w, status, v)
}

// checkText refuses a request whose path or query has a NUL character or
// is not valid UTF-8: PostgreSQL keeps neither in text, and would fail the
// query that an id or a search term goes to (a 500 for anyone's request,
// with an error in the log).
func checkText(r *http.Request) error {
	if !cleanText(r.URL.Path) {
		return errorf(http.StatusBadRequest, "the path has a NUL character or is not valid UTF-8")
	}
	if !cleanQuery(r.URL.Query()) {
		return errorf(http.StatusBadRequest, "the query has a NUL character or is not valid UTF-8")
	}
	return nil
}

// cleanQuery reports whether every name and value of q is cleanText.
func cleanQuery(q url.Values) bool {
	for k, vs := range q {
		if !cleanText(k) || slices.ContainsFunc(vs, func(v string) bool { return !cleanText(v) }) {
			return false
		}
	}
	return true
}

// cleanText reports whether s is valid UTF-8 without a NUL character.
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// decodeJSON decodes a request body of at most 64 KiB into v, refusing
// unknown fields, trailing data and strings with a NUL character (which
// PostgreSQL does not keep in text; invalid UTF-8 the decoder replaces).
func decodeJSON(r *http.Request, v any) error {
	if mt := r.Header.Get("Content-Type"); mt != "" && !isJSON(mt) {
		return errorf(http.StatusUnsupportedMediaType, "content type %q is not application/json", mt)
	}
	var body bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(http.MaxBytesReader(nil, r.Body, 64<<10), &body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid JSON body: data after the object")
	}
	if escapedNUL(body.Bytes()) {
		return errorf(http.StatusBadRequest, "invalid JSON body: a string has a NUL character (\\u0000)")
	}
	return nil
}

// escapedNUL reports whether JSON text b has the escape \u0000 in a
// string: raw control characters are not JSON, so it is the only way a NUL
// arrives.
func escapedNUL(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] == 'u' && bytes.HasPrefix(b[i+2:], []byte("0000")) {
			return true
		}
		i++ // the escaped character, a backslash among them
	}
	return false
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
