package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiClient calls the registry's public HTTP API as one user (or as
// nobody, for the logins).
type apiClient struct {
	base  string
	http  *http.Client
	token string
	log   *slog.Logger
}

// apiError is an answer other than the one wanted.
type apiError struct {
	method, path string
	status       int
	msg          string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.msg)
}

// do sends body as JSON and decodes the answer into out. An answer other
// than 2xx is an *apiError with the API's message. A busy answer (503, or
// 429 asking for a short wait) is retried as its Retry-After says, for
// 30 s at most: the registry bounds password hashes at once.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		wait, err := c.once(ctx, method, path, payload, out)
		if wait == 0 || time.Now().Add(wait).After(deadline) {
			return err
		}
		c.log.Info("registry busy; trying again", "method", method, "path", path, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// once sends one request; a busy answer returns how long to wait before
// the next.
func (c *apiClient) once(ctx context.Context, method, path string, payload []byte, out any) (time.Duration, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		var wait time.Duration
		if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
			wait = time.Second
			if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
				wait = time.Duration(n) * time.Second
			}
		}
		return wait, &apiError{method: method, path: path, status: resp.StatusCode, msg: msg}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return 0, nil
}

// as returns a client of the same API holding token.
func (c *apiClient) as(token string) *apiClient {
	return &apiClient{base: c.base, http: c.http, token: token, log: c.log}
}

// session is the answer of a staff login or password change.
type session struct {
	Token              string `json:"token"`
	MustChangePassword bool   `json:"must_change_password"`
}

func (c *apiClient) login(ctx context.Context, login, password string) (session, error) {
	var s session
	err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"login": login, "password": password}, &s)
	return s, err
}

// changePassword changes the password of the user holding token and
// returns the new session.
func (c *apiClient) changePassword(ctx context.Context, token, old, new string) (session, error) {
	var s session
	err := c.as(token).do(ctx, http.MethodPost, "/api/v1/auth/password", map[string]string{"old_password": old, "new_password": new}, &s)
	return s, err
}

// upload POSTs data of contentType to path and decodes the answer into
// out; an answer other than 2xx is an *apiError.
func (c *apiClient) upload(ctx context.Context, path, contentType string, data []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("POST %s: read the answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{method: http.MethodPost, path: path, status: resp.StatusCode, msg: strings.TrimSpace(string(b))}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: decode the answer: %w", path, err)
	}
	return nil
}

// acceptPolicy accepts the current privacy policy for the demo user
// holding token, unless they have: the demo's people have read it.
func (c *apiClient) acceptPolicy(ctx context.Context, token string) error {
	var me struct {
		PrivacyPolicy struct {
			Current  string `json:"current"`
			Required bool   `json:"required"`
		} `json:"privacy_policy"`
	}
	if err := c.as(token).do(ctx, http.MethodGet, "/api/v1/auth/me", nil, &me); err != nil {
		return fmt.Errorf("read the privacy policy's state: %w", err)
	}
	if !me.PrivacyPolicy.Required {
		return nil
	}
	if err := c.as(token).do(ctx, http.MethodPost, "/api/v1/auth/privacy-policy", map[string]string{"version": me.PrivacyPolicy.Current}, nil); err != nil {
		return fmt.Errorf("accept the privacy policy: %w", err)
	}
	return nil
}

// statusOf returns the HTTP status of an *apiError, 0 for any other error.
func statusOf(err error) int {
	var e *apiError
	if errors.As(err, &e) {
		return e.status
	}
	return 0
}

// waitReady waits until the registry answers /healthz, or ctx ends.
func (c *apiClient) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the registry at %s did not answer /healthz within %v: is `nokstream all` (or registry) running there?", c.base, timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
