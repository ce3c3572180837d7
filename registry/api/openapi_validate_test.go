package api_test

import "github.com/nokstream/nokstream/registry/api/openapitest"

// The tests of this package send their requests with http.DefaultClient
// (env.do and the others); from here on it checks every exchange under
// /api/v1/ against openapi.json and fails the request, naming what the
// document does not describe. A package variable rather than TestMain:
// it is set before any test runs, and no TestMain has to keep in step.
var _ = func() bool { openapitest.Install("openapi.json"); return true }()
