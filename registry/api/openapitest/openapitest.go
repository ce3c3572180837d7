// Package openapitest checks HTTP exchanges with the registry API against
// its OpenAPI document (registry/api/openapi.json) with kin-openapi's
// openapi3filter, so that the document stays true to the wire: the API's
// tests and the end-to-end tests send every request through a Transport
// that validates the request and the answer.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Prefix is the part of the URL path the document describes; requests
// outside it (pages, /readyz, /metrics) pass unchecked.
const Prefix = "/api/v1/"

// mediaPrefix starts the one route whose last parameter spans several path
// segments ({key...} in Go's patterns, {key} in OpenAPI).
const mediaPrefix = "/api/v1/media/"

// Validator checks exchanges against one OpenAPI document.
type Validator struct {
	router routers.Router
}

// New loads and validates the document doc.
func New(doc []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load openapi document: %w", err)
	}
	if err := t.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi document is not valid: %w", err)
	}
	r, err := gorillamux.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("route openapi document: %w", err)
	}
	return &Validator{router: r}, nil
}

// Exchange is one request and its answer, bodies read whole.
type Exchange struct {
	Request     *http.Request
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Check reports what in x the document does not describe: a path or method
// it lacks, a response status it does not list, an answer whose body does
// not match its schema, or a request the document calls invalid that the
// server nevertheless accepted (2xx). A request the document calls invalid
// that the server refused is what a test of bad input sends, and is fine.
func (v *Validator) Check(ctx context.Context, x Exchange) error {
	if !strings.HasPrefix(x.Request.URL.Path, Prefix) {
		return nil
	}
	req := x.Request.Clone(ctx)
	if rest, ok := strings.CutPrefix(req.URL.Path, mediaPrefix); ok {
		req.URL.Path = mediaPrefix + url.PathEscape(rest)
		req.URL.RawPath = ""
	}
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		if x.Status == http.StatusNotFound || x.Status == http.StatusMethodNotAllowed {
			return nil // the server agrees: no such operation
		}
		return fmt.Errorf("openapi.json: %s %s (answered %d): %w", x.Request.Method, x.Request.URL.Path, x.Status, err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if !isJSON(req.Header.Get("Content-Type")) {
		opts.ExcludeRequestBody = true
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && x.Status/100 == 2 {
		// The server reads a date-time whose "+" came unencoded, and so
		// as a space, as the "+" it was; the document asks clients to
		// encode it. Judge such a request as the server reads it.
		if q := req.URL.Query(); restoreOffsets(q) {
			again := req.Clone(ctx)
			again.URL.RawQuery = q.Encode()
			again.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
			if openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
				Request: again, PathParams: params, Route: route, Options: opts}) == nil {
				reqErr = nil
			}
		}
	}
	var errs []error
	if reqErr != nil && x.Status/100 == 2 {
		errs = append(errs, fmt.Errorf("the request does not match the document, yet the server answered %d: %w", x.Status, reqErr))
	}
	respOpts := *opts
	if !isJSON(x.Header.Get("Content-Type")) {
		// Media, playlists, captions and bundles: their bytes are not
		// described by a schema; their status and content type still are.
		respOpts.ExcludeResponseBody = true
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Status, Header: x.Header, Options: &respOpts}
	out.SetBodyBytes(x.Body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		errs = append(errs, fmt.Errorf("the answer %d does not match the document: %w", x.Status, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("openapi.json: %s %s (%s %s): %w", x.Request.Method, x.Request.URL.Path, route.Method, route.Path, err)
	}
	return nil
}

// spacedOffset is a date-time whose UTC offset lost its "+" to a space.
var spacedOffset = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?) (\d\d:\d\d)$`)

// restoreOffsets puts the "+" back into every such date-time of q and
// reports whether there was one.
func restoreOffsets(q url.Values) bool {
	changed := false
	for k, vs := range q {
		for i, v := range vs {
			if m := spacedOffset.FindStringSubmatch(v); m != nil {
				q[k][i] = m[1] + "+" + m[3]
				changed = true
			}
		}
	}
	return changed
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// Transport is an http.RoundTripper that checks every exchange under
// Prefix with a Validator and fails the round trip, with what is wrong,
// when the document does not describe it. Base carries the requests
// (http.DefaultTransport if nil).
type Transport struct {
	Validator *Validator
	Base      http.RoundTripper
	broken    error // why there is no Validator
}

// RoundTrip sends req and checks the exchange.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !strings.HasPrefix(req.URL.Path, Prefix) {
		return base.RoundTrip(req)
	}
	if t.broken != nil {
		return nil, t.broken
	}
	// Bodies that are not JSON (media, bundles) are neither buffered nor
	// checked against a schema: a test that measures the memory of
	// serving a large object must not see this Transport's copy.
	var reqBody []byte
	if req.Body != nil && isJSON(req.Header.Get("Content-Type")) {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	var body []byte
	if isJSON(resp.Header.Get("Content-Type")) {
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read answer: %w", err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	x := Exchange{Request: req, RequestBody: reqBody, Status: resp.StatusCode, Header: resp.Header, Body: body}
	if err := t.Validator.Check(req.Context(), x); err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// Install makes http.DefaultClient check every exchange under Prefix
// against the document in the file path, for a test package whose helpers
// send with it; it is for test binaries only, where one client serves every
// test. If the document cannot be read or is not valid, every request under
// Prefix fails saying so.
func Install(path string) {
	installed.Do(func() {
		t := &Transport{Base: http.DefaultClient.Transport}
		doc, err := os.ReadFile(path)
		if err == nil {
			t.Validator, err = New(doc)
		}
		if err != nil {
			t.broken = fmt.Errorf("openapi document %s: %w", path, err)
		}
		http.DefaultClient.Transport = t
	})
}

var installed sync.Once
