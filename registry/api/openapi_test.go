package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPI checks that the document served at /api/v1/openapi.json is
// true: every registered route is described, every described operation is
// a registered route, every path parameter is declared, every operation
// answers something on success, and every $ref resolves.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	// With a seal key, every route is registered, the evidence bundle's too.
	e := newDomainEnv(t, nil, nil)
	r := e.do("GET", "/api/v1/openapi.json", "", nil)
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json: %d %q", r.code, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}

	// A Go pattern's {key...} is an OpenAPI {key}.
	wildcard := regexp.MustCompile(`\{([a-z_]+)\.\.\.\}`)
	registered := map[string]bool{}
	for _, route := range e.srv.Routes() {
		method, path, _ := strings.Cut(route, " ")
		key := strings.ToLower(method) + " " + wildcard.ReplaceAllString(path, "{$1}")
		registered[key] = true
		if _, ok := doc.Paths[wildcard.ReplaceAllString(path, "{$1}")][strings.ToLower(method)]; !ok {
			t.Errorf("route %s is not in openapi.json", route)
		}
	}
	params := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		var pathParams []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		}
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &pathParams); err != nil {
				t.Errorf("%s: parameters: %v", path, err)
			}
		}
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			if !registered[method+" "+path] {
				t.Errorf("openapi.json describes %s %s, which is not a route", strings.ToUpper(method), path)
			}
			var op struct {
				Summary    string                     `json:"summary"`
				Responses  map[string]json.RawMessage `json:"responses"`
				Parameters []struct {
					Name string `json:"name"`
					In   string `json:"in"`
				} `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Errorf("%s %s: %v", method, path, err)
				continue
			}
			if op.Summary == "" {
				t.Errorf("%s %s has no summary", method, path)
			}
			if !slices.ContainsFunc(keys(op.Responses), func(c string) bool { return strings.HasPrefix(c, "2") }) {
				t.Errorf("%s %s has no success response", method, path)
			}
			for _, m := range params.FindAllStringSubmatch(path, -1) {
				declared := slices.ContainsFunc(pathParams, func(p struct {
					Name string `json:"name"`
					In   string `json:"in"`
				}) bool {
					return p.Name == m[1] && p.In == "path"
				})
				if !declared {
					t.Errorf("%s %s: path parameter %s is not declared", method, path, m[1])
				}
			}
		}
	}
	refs := regexp.MustCompile(`"\$ref":\s*"#/components/schemas/([^"]+)"`)
	for _, m := range refs.FindAllStringSubmatch(string(r.body), -1) {
		if _, ok := doc.Components.Schemas[m[1]]; !ok {
			t.Errorf("$ref to unknown schema %s", m[1])
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
