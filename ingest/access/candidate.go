package access

import (
	"context"
)

// CandidateChecker authenticates a candidate who publishes their
// workstation's webcam or screen with the exam token they got from the
// registry (POST /api/v1/exam/login): the token is bound to the candidate,
// the exam and the workstation, and works only inside the exam window.
// It answers ErrBadCredentials for a wrong or expired token, a device that
// is not the candidate's, or a time outside the window.
type CandidateChecker interface {
	CheckCandidate(ctx context.Context, site, device, token string) (Publisher, error)
}

// CheckCandidate implements CandidateChecker when the wrapped Checker
// does; otherwise every exam token is ErrBadCredentials. Exam tokens are
// not cached: a candidate may publish only while the registry can confirm
// that the exam is on.
func (c *Cache) CheckCandidate(ctx context.Context, site, device, token string) (Publisher, error) {
	cc, ok := c.next.(CandidateChecker)
	if !ok {
		return Publisher{}, ErrBadCredentials
	}
	return cc.CheckCandidate(ctx, site, device, token)
}
