package api

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/registry/store"
)

// limitStore lists what the limits on login attempts call of the registry's
// database.
type limitStore interface {
	AttemptLogin(ctx context.Context, kind, login, addr string, now time.Time, lim store.LoginLimits) (int64, error)
	AuditLogin(ctx context.Context, at time.Time, action, login, addr string) error
}

// loginLimits are the limits of Config as the store takes them.
func (s *Server) loginLimits() store.LoginLimits {
	return store.LoginLimits{
		PerLoginAddress: s.cfg.LoginFailuresPerLoginAddress, Backoff: s.cfg.LoginBackoff,
		PerAddress: s.cfg.LoginFailuresPerAddress,
		PerLogin:   s.cfg.LoginFailuresPerLogin, KnownInterval: s.cfg.LoginKnownInterval,
		Window: s.cfg.LoginFailureWindow,
	}
}

// attempt counts an attempt of kind to log in as login from the client of
// r before its password is checked. Over a limit it answers 429 with
// Retry-After, audited in aggregate as action+"_throttled".
func (s *Server) attempt(w http.ResponseWriter, r *http.Request, kind, action, login string) (int64, error) {
	addr := s.clientAddr(r)
	now := s.now()
	id, err := s.db.limits.AttemptLogin(r.Context(), kind, login, addr, now, s.loginLimits())
	if th, ok := store.IsThrottled(err); ok {
		// One audit row per minute and limit that refuses: an address
		// over its limit is one row whatever logins a flood tries, and a
		// login over its ceiling one row whatever addresses it comes from.
		who, from := login, addr
		switch th.Rule {
		case "address":
			who = "*"
		case "login":
			from = "*"
		}
		s.loginRefused.WithLabelValues("throttled_" + strings.ReplaceAll(th.Rule, "-", "_")).Inc()
		if err := s.db.limits.AuditLogin(r.Context(), now, action+"_throttled", who, from); err != nil {
			return 0, err
		}
		secs := int64(math.Ceil(th.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		return 0, errorf(http.StatusTooManyRequests, "too many failed logins: try again in %d seconds", secs)
	}
	return id, err
}

// acquireHash waits up to Config.AuthQueueWait for one of the
// Config.AuthConcurrency password-hash slots. It returns the release of
// the slot, or a 503 with Retry-After when none came free.
func (s *Server) acquireHash(w http.ResponseWriter, r *http.Request) (func(), error) {
	release := func() { <-s.hashSlots }
	select {
	case s.hashSlots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.cfg.AuthQueueWait)
	defer t.Stop()
	select {
	case s.hashSlots <- struct{}{}:
		return release, nil
	case <-t.C:
		s.loginRefused.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", "1")
		return nil, errorf(http.StatusServiceUnavailable, "too many logins at once: try again in a second")
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// clientAddr returns the IP address of the client of r, through
// Config.TrustedProxies.
func (s *Server) clientAddr(r *http.Request) string {
	return httpserver.ClientAddr(r, s.cfg.TrustedProxies)
}

// auditAddr is the client address the audit log keeps for r: the peer's
// address and port, or the client a trusted proxy forwarded for.
func (s *Server) auditAddr(r *http.Request) string {
	if c := s.clientAddr(r); c != httpserver.PeerAddr(r) {
		return c
	}
	return r.RemoteAddr
}
