// Package deploy holds what an operator needs to run nokstream beyond one
// machine: a Dockerfile and a compose file (docker/), Kubernetes manifests
// with a kustomize base and an exam-site overlay (kubernetes/), systemd
// units for an exam site's ingest box (systemd/), and Prometheus alert rules
// with a Grafana dashboard (monitoring/). The local scripts behind `make run`
// and `make test` are in local/.
//
// The package has no code of its own; its tests check the files without a
// cluster or a Docker engine: every Kubernetes manifest decodes strictly into
// the Kubernetes API types and hangs together (selectors, ports, probes,
// secrets), every kustomization lists files that exist, the compose file
// loads, every NOKSTREAM_* setting names a flag of the subcommand it is given
// to, every alert rule and dashboard query parses as PromQL, and every metric
// they name is exported by a running `nokstream all`.
package deploy
