// Package nodeapi is the wire contract between an ingest node and the
// registry's node API: the paths, the JSON bodies and the node token. The
// registry serves it (registry/api's NodeAPI) and ingest calls it
// (ingest/access's Registry); neither imports the other, both import this
// leaf.
//
// The node API is internal: it is not in the public OpenAPI document, and
// only a node token opens it (Authorization: Bearer <token>). A request
// without a valid, unrevoked token answers 401 and nothing else.
//
//	GET  /internal/v1/ping               204 when the registry can check credentials (its database answers), else 503
//	POST /internal/v1/publishers/check   PublisherCheck → 200 Publisher, or 403 Refusal
//	POST /internal/v1/candidates/check   CandidateCheck → 200 Publisher, or 403 Refusal
//	GET  /internal/v1/pulls              → 200 []PullDevice: the cameras ingest pulls, their URLs sealed
//
// Errors other than a refusal are {"error": "..."}: 400 for a malformed
// request, 401 for the node token, 503 when the registry cannot answer now
// (a node tries another registry, then its cache).
package nodeapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Prefix is the path prefix of every node API route.
const Prefix = "/internal/v1/"

// The routes of the node API.
const (
	PathPing      = Prefix + "ping"
	PathPublisher = Prefix + "publishers/check"
	PathCandidate = Prefix + "candidates/check"
	PathPulls     = Prefix + "pulls"
)

// MaxBody is the largest request body the registry reads.
const MaxBody = 16 << 10

// PublisherCheck asks whether User with Secret may publish Site/Device.
type PublisherCheck struct {
	Site   string `json:"site"`
	Device string `json:"device"`
	User   string `json:"user"`
	Secret string `json:"secret"`
}

// CandidateCheck asks whether the holder of an exam token may publish
// Site/Device now.
type CandidateCheck struct {
	Site   string `json:"site"`
	Device string `json:"device"`
	Token  string `json:"token"`
}

// Publisher is an accepted publisher. Candidate, Exam and Until are set for
// a candidate publishing with an exam token: Until ends the exam window.
type Publisher struct {
	Site      string    `json:"site"`
	Device    string    `json:"device"`
	Source    string    `json:"source"`
	Candidate string    `json:"candidate,omitempty"`
	Exam      string    `json:"exam,omitempty"`
	Until     time.Time `json:"until,omitzero"`
}

// Refusal reasons (403).
const (
	// RefusedUnknownStream: no device is registered under the stream.
	RefusedUnknownStream = "unknown_stream"
	// RefusedBadCredentials: the secret or exam token is wrong, expired,
	// for another device, or outside the exam window.
	RefusedBadCredentials = "bad_credentials"
)

// Refusal is the 403 answer: the registry answered, and the answer is no.
type Refusal struct {
	Refused string `json:"refused"`
}

// PullDevice is a camera ingest pulls. URLSealed is the camera URL sealed
// with the secrets key (internal/secrets) by `nokstream device add --pull`:
// the registry never holds it in clear, ingest opens it with its own copy
// of the key.
type PullDevice struct {
	Site      string `json:"site"`
	Device    string `json:"device"`
	Source    string `json:"source"`
	URLSealed []byte `json:"url_sealed"`
}

// Error is the body of an error answer other than a refusal.
type Error struct {
	Error string `json:"error"`
}

// tokenPrefix starts every node token, so that one found in a log or a
// file says what it is.
const tokenPrefix = "nkn."

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidNodeName reports whether s may name an ingest node: lowercase
// letters, digits, '-' and '_', at most 63 characters.
func ValidNodeName(s string) bool { return nameRe.MatchString(s) }

// NewToken returns a new token for the node called name:
// "nkn.<name>.<43 characters of base64url>", 256 random bits.
func NewToken(name string) (string, error) {
	if !ValidNodeName(name) {
		return "", fmt.Errorf("node name %q: use lowercase letters, digits, '-' and '_' (at most 63)", name)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new node token: %w", err)
	}
	return tokenPrefix + name + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseToken returns the node a token names, or false when the token is
// not one NewToken makes. It checks the form only: the registry compares
// HashToken of it with the hash it stored.
func ParseToken(token string) (name string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", false
	}
	name, secret, ok := strings.Cut(rest, ".")
	if !ok || !ValidNodeName(name) {
		return "", false
	}
	if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != 32 {
		return "", false
	}
	return name, true
}

// HashToken is what the registry keeps of a token: its SHA-256 (the
// token's 256 random bits make a slow hash pointless).
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
