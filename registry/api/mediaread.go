package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/registry/store"
)

// mediaStore lists what the media route call of the registry's database.
type mediaStore interface {
	UserBySession(ctx context.Context, sid, uid int64, now time.Time) (store.User, error)
	ExpertStreamWindows(ctx context.Context, expert int64, site, device string) ([]store.Window, error)
	StreamExamWindows(ctx context.Context, site, device string) ([]store.ExamWindow, error)
	Site(ctx context.Context, id string) (store.Site, error)
	SegmentByID(ctx context.Context, id string) (store.Segment, error)
}

// RevokeWithin is the longest a signed URL keeps working after its session
// ended (a logout on another registry, a password change or reset,
// disabling the user): the session of a signed URL is looked up again at
// most this long after the last lookup. A logout stops the session's URLs
// on the registry that answered it at once.
const RevokeWithin = sessionCacheTTL

// How long the media route trusts what it looked up: a signed URL's
// session for sessionCacheTTL; what a user may see of a stream (an
// expert's appointments, a site's owner) as long; an indexed object and its segment's span for objectCacheTTL (they
// never change once indexed). A blob store that is not a local directory
// re-reads an object whole to check it against the index after
// verifiedCacheTTL, or as soon as its size or modification time changes; a
// local file whenever its inode, size, modification or change time does.
const (
	sessionCacheTTL  = 5 * time.Second
	scopeCacheTTL    = 5 * time.Second
	objectCacheTTL   = time.Minute
	verifiedCacheTTL = time.Minute
	mediaCacheSize   = 100_000 // entries per cache, at most
)

// mediaServing is what the media route keeps between requests: caches of
// the database lookups a request would otherwise make (the signed URL's
// session, the object, the caller's scope, the object's last check against
// the index) and the media access audit (mediaaudit.go).
type mediaServing struct {
	sessions ttlCache[sessionKey, store.User]
	objects  ttlCache[string, mediaObjectInfo]
	windows  ttlCache[windowsKey, []store.Window]
	councils ttlCache[streamKey, []store.ExamWindow]
	sites    ttlCache[string, store.Site]
	verified ttlCache[string, objectStamp]
	audit    *mediaAudit
}

func newMediaServing(s *Server) *mediaServing {
	return &mediaServing{
		sessions: newTTLCache[sessionKey, store.User](sessionCacheTTL),
		objects:  newTTLCache[string, mediaObjectInfo](objectCacheTTL),
		windows:  newTTLCache[windowsKey, []store.Window](scopeCacheTTL),
		councils: newTTLCache[streamKey, []store.ExamWindow](scopeCacheTTL),
		sites:    newTTLCache[string, store.Site](scopeCacheTTL),
		verified: newTTLCache[string, objectStamp](verifiedCacheTTL),
		audit:    newMediaAudit(s.db.mediaAudit, s.db.auth.Audit, s.log, s.now),
	}
}

type sessionKey struct{ sid, uid int64 }

// streamKey names a stream: <site>/<device>.
type streamKey struct{ site, device string }

type windowsKey struct {
	expert       int64
	site, device string
}

// mediaObjectInfo is an indexed media object and, for a media segment, the
// span of footage it holds.
type mediaObjectInfo struct {
	store.Object
	start, end time.Time // zero for an init segment
}

// objectStamp identifies the stored bytes an object was checked against
// the index as: a file's inode and times, or a blob's size and time.
type objectStamp struct {
	sha256       string
	size         int64
	dev, ino     uint64
	mtime, ctime int64 // ns
}

// sessionUser is UserBySession through the cache: the user a signed URL
// acts for while its session lasts. A refusal is not cached.
func (s *Server) sessionUser(ctx context.Context, sid, uid int64) (store.User, error) {
	k := sessionKey{sid, uid}
	if u, ok := s.serving.sessions.get(k, s.now()); ok {
		return u, nil
	}
	u, err := s.db.media.UserBySession(ctx, sid, uid, s.now())
	if err != nil {
		return store.User{}, err
	}
	s.serving.sessions.put(k, u, s.now())
	return u, nil
}

// forgetSessions drops the cached sessions of login's signed URLs, when
// the account is suspended here: at once on this registry, within
// RevokeWithin on the others.
func (s *Server) forgetSessions(login string) {
	s.serving.sessions.dropIf(func(_ sessionKey, u store.User) bool { return u.Login == login })
}

// cachedScope is the store's scope lookups through the caches: canSeeIn
// reads it for the media route.
type cachedScope struct{ s *Server }

func (c cachedScope) ExpertStreamWindows(ctx context.Context, expert int64, site, device string) ([]store.Window, error) {
	k := windowsKey{expert, site, device}
	if w, ok := c.s.serving.windows.get(k, c.s.now()); ok {
		return w, nil
	}
	w, err := c.s.db.media.ExpertStreamWindows(ctx, expert, site, device)
	if err != nil {
		return nil, err
	}
	c.s.serving.windows.put(k, w, c.s.now())
	return w, nil
}

func (c cachedScope) StreamExamWindows(ctx context.Context, site, device string) ([]store.ExamWindow, error) {
	k := streamKey{site, device}
	if w, ok := c.s.serving.councils.get(k, c.s.now()); ok {
		return w, nil
	}
	w, err := c.s.db.media.StreamExamWindows(ctx, site, device)
	if err != nil {
		return nil, err
	}
	c.s.serving.councils.put(k, w, c.s.now())
	return w, nil
}

func (c cachedScope) Site(ctx context.Context, id string) (store.Site, error) {
	if st, ok := c.s.serving.sites.get(id, c.s.now()); ok {
		return st, nil
	}
	st, err := c.s.db.media.Site(ctx, id)
	if err != nil {
		return store.Site{}, err // ErrNotFound included: not cached
	}
	c.s.serving.sites.put(id, st, c.s.now())
	return st, nil
}

// mediaInfo is the indexed object of key and its footage's span, through
// the cache.
func (s *Server) mediaInfo(ctx context.Context, key string) (mediaObjectInfo, error) {
	if m, ok := s.serving.objects.get(key, s.now()); ok {
		return m, nil
	}
	o, err := s.mediaObject(ctx, key)
	if err != nil {
		return mediaObjectInfo{}, err
	}
	m := mediaObjectInfo{Object: o}
	if !o.Init {
		g, err := s.db.media.SegmentByID(ctx, o.SegmentID)
		if err != nil {
			return mediaObjectInfo{}, fmt.Errorf("span of media object %s: %w", key, err)
		}
		m.start, m.end = g.Start, g.End
	}
	s.serving.objects.put(key, m, s.now())
	return m, nil
}

// media handles GET /api/v1/media/{key...}: the bytes of an indexed segment,
// init segment or rendition object, with Range support. The object is
// checked against the index (size and SHA-256) before it is served, and
// again whenever the stored bytes may have changed (objectStamp); a local
// file is sent with sendfile. The access is audited in aggregate
// (mediaaudit.go) before the first byte.
func (s *Server) media(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	key := r.PathValue("key")
	m, err := s.mediaInfo(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "unknown media object")
	}
	if err != nil {
		return err
	}
	// A media segment is checked at its footage's time (for an expert, and
	// for a council, which sees a multi-industry center's footage by exam);
	// an init segment holds no footage.
	var from, to time.Time
	if c.user.Role == store.RoleExpert || c.user.Role == store.RoleCouncil {
		from, to = m.start, m.end
	}
	ok, err := canSeeIn(ctx, cachedScope{s}, c.user, m.Site, m.Device, from, to, false)
	if err != nil {
		return err
	}
	if !ok {
		return errorf(http.StatusNotFound, "unknown media object")
	}
	rc, err := s.blobs.Get(ctx, m.Key)
	if errors.Is(err, blob.ErrNotFound) {
		s.log.Warn("indexed media object missing from the blob store", "object_key", m.Key, "segment_id", m.SegmentID)
		return errorf(http.StatusNotFound, "media object is indexed but not stored")
	}
	if err != nil {
		return fmt.Errorf("get media object %s: %w", m.Key, err)
	}
	defer rc.Close() // Only read: closing loses nothing.
	var content io.ReadSeeker
	if f, ok := rc.(*os.File); ok {
		if err := s.verifyFile(m.Object, f); err != nil {
			return err
		}
		content = f
	} else {
		_ = rc.Close() // Only read: closing loses nothing.
		if err := s.verifyBlob(ctx, m.Object); err != nil {
			return err
		}
		rd := &objectReader{ctx: ctx, get: s.blobs.Get, key: m.Key, size: m.Bytes}
		defer rd.Close() // Only read: closing loses nothing.
		content = rd
	}
	if err := s.serving.audit.record(ctx, s.mediaAccess(r, c, m)); err != nil {
		return fmt.Errorf("audit media access: %w", err)
	}
	w.Header().Set("Content-Type", mediaType(m.Object))
	w.Header().Set("ETag", `"`+m.SHA256+`"`)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	if sw, ok := w.(*statusWriter); ok {
		w = sendfileWriter{sw}
	}
	http.ServeContent(w, r, "", time.Time{}, content)
	return nil
}

// mediaAccess is one fetch of m by c, for the audit.
func (s *Server) mediaAccess(r *http.Request, c *caller, m mediaObjectInfo) store.MediaAccess {
	now := s.now()
	// The address without the port: a player opens many connections.
	addr := s.auditAddr(r)
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	a := store.MediaAccess{ActorID: c.user.ID, ActorLogin: c.user.Login, Stream: m.Site + "/" + m.Device, Purpose: purpose(r),
		RemoteAddrs: []string{addr}, Via: []string{"token"}, Fetches: 1, First: now, Last: now,
		MediaFrom: m.start, MediaTo: m.end}
	if c.token == "" {
		a.Via[0] = "signed_url"
	}
	if r.Header.Get("Range") != "" {
		a.Ranged = 1
	}
	if m.Init {
		a.Init = 1
	}
	return a
}

// verifyFile checks the open file f of o against the index, unless this
// same file, unchanged, was checked: the file is read through f, so what
// was checked is what is served.
func (s *Server) verifyFile(o store.Object, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat media object %s: %w", o.Key, err)
	}
	stamp := objectStamp{sha256: o.SHA256, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		stamp.dev, stamp.ino = uint64(st.Dev), st.Ino
		stamp.ctime = st.Ctim.Nano()
	}
	if prev, ok := s.serving.verified.get(o.Key, s.now()); ok && prev == stamp {
		return nil
	}
	if err := s.checkObject(o, io.NewSectionReader(f, 0, o.Bytes+1)); err != nil {
		return err
	}
	s.serving.verified.put(o.Key, stamp, s.now())
	return nil
}

// verifyBlob checks o in a blob store that is not a local directory
// against the index, unless it was checked within verifiedCacheTTL and its
// size and modification time are still the same.
func (s *Server) verifyBlob(ctx context.Context, o store.Object) error {
	st, ok := s.blobs.(interface {
		Stat(ctx context.Context, key string) (blob.Attrs, error)
	})
	if !ok {
		return s.verifyObject(ctx, o)
	}
	a, err := st.Stat(ctx, o.Key)
	if err != nil {
		return s.verifyObject(ctx, o) // answers a missing object as it should
	}
	stamp := objectStamp{sha256: o.SHA256, size: a.Size, mtime: a.ModTime.UnixNano()}
	if prev, ok := s.serving.verified.get(o.Key, s.now()); ok && prev == stamp {
		return nil
	}
	if err := s.verifyObject(ctx, o); err != nil {
		return err
	}
	s.serving.verified.put(o.Key, stamp, s.now())
	return nil
}

// sendfileWriter lets http.ServeContent hand a file to the connection's
// ReadFrom (sendfile on Linux), which statusWriter hides.
type sendfileWriter struct{ *statusWriter }

func (w sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.statusWriter}, r)
}

// ttlCache is a map whose entries last ttl, with at most mediaCacheSize
// of them: a put into a full cache first drops the expired entries, then
// any.
type ttlCache[K comparable, V any] struct {
	mu  *sync.Mutex
	ttl time.Duration
	m   map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration) ttlCache[K, V] {
	return ttlCache[K, V]{mu: &sync.Mutex{}, ttl: ttl, m: map[K]ttlEntry[V]{}}
}

func (c ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c ttlCache[K, V]) drop(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

func (c ttlCache[K, V]) dropIf(f func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if f(k, e.v) {
			delete(c.m, k)
		}
	}
}

func (c ttlCache[K, V]) put(k K, v V, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= mediaCacheSize {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < mediaCacheSize*3/4 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, until: now.Add(c.ttl)}
}

// verifyObject reads a stored media object once, as a stream, and checks its
// size and SHA-256 against the index: evidence that differs from what
// ingest announced is never served as if it were the original. Memory stays
// bounded whatever the object's size (a segment may be up to 256 MiB).
func (s *Server) verifyObject(ctx context.Context, o store.Object) error {
	rc, err := s.blobs.Get(ctx, o.Key)
	if errors.Is(err, blob.ErrNotFound) {
		s.log.Warn("indexed media object missing from the blob store", "object_key", o.Key, "segment_id", o.SegmentID)
		return errorf(http.StatusNotFound, "media object is indexed but not stored")
	}
	if err != nil {
		return fmt.Errorf("get media object %s: %w", o.Key, err)
	}
	defer rc.Close() // Only read: closing loses nothing.
	return s.checkObject(o, io.LimitReader(rc, o.Bytes+1))
}

// checkObject reads r, the stored bytes of o (at most one byte more than
// the index says), and checks their size and SHA-256 against the index.
func (s *Server) checkObject(o store.Object, r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("read media object %s: %w", o.Key, err)
	}
	if n != o.Bytes || !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), o.SHA256) {
		s.log.Error("media object does not match its index", "object_key", o.Key, "segment_id", o.SegmentID,
			"bytes", n, "want_bytes", o.Bytes)
		return errorf(http.StatusInternalServerError, "stored media object does not match its index")
	}
	return nil
}

// objectReader is an io.ReadSeeker over a stored object of a known size for
// http.ServeContent: a Seek only records the offset, and the next Read opens
// the object there (seeking the blob store's reader when it can, else
// skipping), so a Range request reads only up to its end and nothing is held
// in memory.
type objectReader struct {
	ctx  context.Context
	get  func(ctx context.Context, key string) (io.ReadCloser, error)
	key  string
	size int64
	off  int64 // of the next Read
	rc   io.ReadCloser
	at   int64 // position of rc
}

func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return r.off, fmt.Errorf("seek %s: bad whence %d", r.key, whence)
	}
	if offset < 0 {
		return r.off, fmt.Errorf("seek %s: negative offset %d", r.key, offset)
	}
	r.off = offset
	return offset, nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.rc != nil && r.at != r.off {
		if err := r.Close(); err != nil {
			return 0, err
		}
	}
	if r.rc == nil {
		rc, err := r.get(r.ctx, r.key)
		if err != nil {
			return 0, fmt.Errorf("get media object %s: %w", r.key, err)
		}
		r.rc, r.at = rc, 0
		if r.off > 0 {
			if sk, ok := rc.(io.Seeker); ok {
				if _, err := sk.Seek(r.off, io.SeekStart); err != nil {
					return 0, fmt.Errorf("seek media object %s: %w", r.key, err)
				}
			} else if _, err := io.CopyN(io.Discard, rc, r.off); err != nil {
				return 0, fmt.Errorf("skip to %d in media object %s: %w", r.off, r.key, err)
			}
			r.at = r.off
		}
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	r.at += int64(n)
	if errors.Is(err, io.EOF) && r.off < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close closes the open reader, if any.
func (r *objectReader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}
