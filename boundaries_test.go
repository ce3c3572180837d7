// Package nokstream_test checks the boundaries between the services of the
// tree (docs/NOTES.md, issue 12): a service's packages link no package of
// another service, and the shared packages under internal/ link none at all.
// Shared formats live in leaf packages (internal/evidence, internal/events);
// only cmd/nokstream, the wiring, knows every service.
package nokstream_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/nokstream/nokstream/"

// services are the top-level directories whose packages are a service's.
var services = []string{"ingest", "transcoder", "archiver", "registry"}

// pending are the imports across services that are known and being
// removed, each with why: importer's service → the package it still links.
// Any other one fails the test.
// The last one, archiver → registry/store, went when the archiver came to
// decide from its own copy of the registry's facts (docs/NOTES.md, Session 6).
var pending = map[[2]string]string{}

// serviceOf returns the service a package belongs to, or "".
func serviceOf(pkg string) string {
	rel, ok := strings.CutPrefix(pkg, module)
	if !ok {
		return ""
	}
	top, _, _ := strings.Cut(rel, "/")
	if slices.Contains(services, top) {
		return top
	}
	return ""
}

// graph lists, with `go list -deps` (tests excluded), every package the
// packages of pattern link, and the direct imports of each.
func graph(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pattern, err, out)
	}
	g := map[string][]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			g[f[0]] = f[1:]
		}
	}
	return g
}

// TestNoServiceLinksAnother: `go list -deps` of each service's packages
// (ingest/..., transcoder/..., archiver/..., registry/...) and of internal/...
// shows no package of another service, apart from the pending ones; each
// offence names the package and who imports it.
func TestNoServiceLinksAnother(t *testing.T) {
	t.Parallel()
	for _, tree := range append(slices.Clone(services), "internal") {
		t.Run(tree, func(t *testing.T) {
			t.Parallel()
			g := graph(t, tree+"/...")
			own := 0
			for pkg := range g {
				if strings.HasPrefix(pkg+"/", module+tree+"/") {
					own++
				}
			}
			if own == 0 || len(g) < 20 {
				t.Fatalf("go list -deps %s/... listed %d packages, %d of %s: not the tree?", tree, len(g), own, tree)
			}
			// A pending import allows what comes with it: the packages it
			// links in turn.
			allowed := map[string]bool{}
			var allow func(pkg string)
			allow = func(pkg string) {
				if !allowed[pkg] {
					allowed[pkg] = true
					for _, p := range g[pkg] {
						allow(p)
					}
				}
			}
			for k, why := range pending {
				if k[0] != tree {
					continue
				}
				if _, ok := g[module+k[1]]; !ok {
					t.Logf("%s no longer links %s: drop it from pending (%s)", tree, k[1], why)
					continue
				}
				allow(module + k[1])
			}
			for pkg := range g {
				other := serviceOf(pkg)
				if other == "" || other == tree || allowed[pkg] {
					continue
				}
				var by []string
				for p, imports := range g {
					if slices.Contains(imports, pkg) {
						by = append(by, strings.TrimPrefix(p, module))
					}
				}
				slices.Sort(by)
				t.Errorf("%s links %s, a package of the %s service (imported by %s): move what they share to a leaf package under internal/",
					tree, strings.TrimPrefix(pkg, module), other, strings.Join(by, ", "))
			}
		})
	}
}
