package e2e

import "github.com/nokstream/nokstream/registry/api/openapitest"

// The end-to-end tests call the registry API with http.DefaultClient
// (api.do, fetchSHA and http.Get); from here on it checks every exchange
// under /api/v1/ against the OpenAPI document and fails the request, naming
// what the document does not describe. A package variable rather than a
// line in TestMain: it is set before any test runs.
var _ = func() bool { openapitest.Install("../registry/api/openapi.json"); return true }()
