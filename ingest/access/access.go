// Package access decides who may publish a stream into ingest. Registry
// asks the registry's node API (internal/nodeapi) with the node's token, and
// Cache stands in for it while no registry answers; the transports (RTSP,
// WHIP) call them for every new publisher session. Ingest holds no database.
package access

import (
	"context"
	"errors"
	"regexp"
	"time"
)

// ErrUnknownStream means no device is registered under the stream's path.
// The transports answer it as ErrBadCredentials (RTSP 401, HTTP 401), so
// that device names cannot be probed before authentication.
var ErrUnknownStream = errors.New("unknown stream")

// ErrBadCredentials means the credentials were missing or wrong (RTSP 401,
// HTTP 401).
var ErrBadCredentials = errors.New("bad credentials")

// Publisher is what ingest learns about an authenticated publisher.
type Publisher struct {
	Site   string
	Device string
	Source string // room, webcam or screen
	// Candidate and Exam are set for a candidate publishing with an exam
	// token (CandidateChecker); Until is then the end of the exam window,
	// after which the candidate may no longer publish.
	Candidate string
	Exam      string
	Until     time.Time
}

// Checker authenticates a publisher of <site>/<device> with a user name and
// secret.
type Checker interface {
	CheckPublisher(ctx context.Context, site, device, user, secret string) (Publisher, error)
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName reports whether s is a valid site or device name: lowercase
// letters, digits, '-' and '_', at most 63 characters. Names become parts of
// object keys and URLs, so nothing else is allowed.
func ValidName(s string) bool { return nameRe.MatchString(s) }
