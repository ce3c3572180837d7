package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const kubeDir = "kubernetes"

// kustomization is the part of kustomize's Kustomization these manifests
// use; a field outside it fails the strict decoding, so a new one is added
// here on purpose.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources,omitempty"`
	Patches   []struct {
		Path  string `json:"path,omitempty"`
		Patch string `json:"patch,omitempty"`
	} `json:"patches,omitempty"`
}

// newObject returns the typed Kubernetes object for apiVersion and kind.
// Only kinds these manifests use are known; another one fails the test
// until it is added here.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}, nil
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "batch/v1/Job":
		return &batchv1.Job{}, nil
	}
	return nil, fmt.Errorf("unknown apiVersion %q kind %q", apiVersion, kind)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// object is one decoded manifest.
type object struct {
	where string // file and document number
	kind  string
	name  string
	obj   any
}

// decodeManifests decodes every document of b strictly into its Kubernetes
// type: an unknown or misspelt field, a duplicate key or a wrong type fails.
// With patch set, a strategic-merge directive ($patch) at the top is allowed.
func decodeManifests(where string, b []byte, patch bool) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(b), -1) {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s #%d: %w", where, i+1, err)
		}
		if string(bytes.TrimSpace(j)) == "null" {
			continue // comments only
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s #%d: %w", where, i+1, err)
		}
		if head.Metadata.Name == "" {
			return nil, fmt.Errorf("%s #%d: no metadata.name", where, i+1)
		}
		o, err := newObject(head.APIVersion, head.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s #%d: %w", where, i+1, err)
		}
		if patch {
			doc = regexp.MustCompile(`(?m)^\$patch: *(delete|replace|merge)[ \t]*$`).ReplaceAllString(doc, "")
		}
		if err := yaml.UnmarshalStrict([]byte(doc), o); err != nil {
			return nil, fmt.Errorf("%s #%d (%s %s): %w", where, i+1, head.Kind, head.Metadata.Name, err)
		}
		out = append(out, object{where: fmt.Sprintf("%s #%d", where, i+1), kind: head.Kind, name: head.Metadata.Name, obj: o})
	}
	return out, nil
}

// loadKustomization decodes dir/kustomization.yaml strictly, checks that
// every resource and patch it lists exists and decodes, and returns the
// objects of its resources (recursively) and of its patches.
func loadKustomization(t *testing.T, dir string, seen map[string]bool) (resources, patches []object) {
	t.Helper()
	path := filepath.Join(dir, "kustomization.yaml")
	seen[path] = true
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s: apiVersion %q kind %q", path, k.APIVersion, k.Kind)
	}
	if len(k.Resources) == 0 {
		t.Errorf("%s: no resources", path)
	}
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: resource %s: %v", path, r, err)
			continue
		}
		if st.IsDir() {
			rs, _ := loadKustomization(t, p, seen)
			resources = append(resources, rs...)
			continue
		}
		seen[p] = true
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(p, b, false)
		if err != nil {
			t.Error(err)
		}
		resources = append(resources, objs...)
	}
	for i, pt := range k.Patches {
		var objs []object
		var err error
		switch {
		case pt.Path != "" && pt.Patch != "":
			t.Errorf("%s: patch %d has both path and patch", path, i)
		case pt.Path != "":
			p := filepath.Join(dir, pt.Path)
			seen[p] = true
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				t.Errorf("%s: patch %s: %v", path, pt.Path, rerr)
				continue
			}
			objs, err = decodeManifests(p, b, true)
		default:
			objs, err = decodeManifests(fmt.Sprintf("%s patch %d", path, i), []byte(pt.Patch), true)
		}
		if err != nil {
			t.Error(err)
		}
		patches = append(patches, objs...)
	}
	return resources, patches
}

// TestKubernetes checks the kustomize base and every overlay without a
// cluster: strict decoding of every manifest and patch, files that exist,
// no manifest that no kustomization lists, and a base that hangs together.
func TestKubernetes(t *testing.T) {
	seen := map[string]bool{}
	base, basePatches := loadKustomization(t, filepath.Join(kubeDir, "base"), seen)
	if len(basePatches) > 0 {
		t.Errorf("the base has patches; put them in an overlay")
	}
	checkBase(t, base)

	overlays, err := os.ReadDir(filepath.Join(kubeDir, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	if len(overlays) == 0 {
		t.Error("no overlays")
	}
	for _, o := range overlays {
		t.Run(o.Name(), func(t *testing.T) {
			resources, patches := loadKustomization(t, filepath.Join(kubeDir, "overlays", o.Name()), seen)
			if len(patches) == 0 {
				t.Error("the overlay patches nothing")
			}
			// A patch of an object that is not there fails in kustomize.
			for _, p := range patches {
				if !slices.ContainsFunc(resources, func(r object) bool { return r.kind == p.kind && r.name == p.name }) {
					t.Errorf("%s patches %s %s, which the overlay's resources do not have", p.where, p.kind, p.name)
				}
			}
			// An overlay that runs no registry (an exam site's edge) holds no
			// database credentials: ingest asks the registry's node API.
			if slices.ContainsFunc(patches, func(p object) bool { return p.kind == "Deployment" && p.name == "registry" }) &&
				!slices.ContainsFunc(patches, func(p object) bool { return p.kind == "Secret" && p.name == "nokstream-db" }) {
				t.Error("the overlay removes the registry but keeps the database Secret nokstream-db")
			}
			// The container patched in a workload must be one the base has, so that
			// the patch merges into it instead of adding a second container.
			for _, p := range patches {
				ps := podSpec(p.obj)
				if ps == nil {
					continue
				}
				i := slices.IndexFunc(resources, func(r object) bool { return r.kind == p.kind && r.name == p.name })
				if i < 0 {
					continue
				}
				for _, c := range ps.Containers {
					if !slices.ContainsFunc(podSpec(resources[i].obj).Containers, func(b corev1.Container) bool { return b.Name == c.Name }) {
						t.Errorf("%s: container %q is not in the base's %s %s", p.where, c.Name, p.kind, p.name)
					}
					checkEnv(t, p.where, p.name, envNames(c.Env))
				}
			}
		})
	}

	// Every YAML file under kubernetes/ is used by some kustomization.
	err = filepath.WalkDir(kubeDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) && !seen[p] {
			t.Errorf("%s is listed by no kustomization", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func podSpec(o any) *corev1.PodSpec {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &w.Spec.Template.Spec
	}
	return nil
}

func envNames(env []corev1.EnvVar) []string {
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	return names
}

// workload is a Deployment or StatefulSet of the base.
type workload struct {
	object
	labels   map[string]string
	spec     *corev1.PodSpec
	selector map[string]string
}

// checkBase checks what a cluster would only find out at run time: the
// shape the issue asks for, selectors that select, ports and probes that
// name real ports, settings that are real flags, and secrets and files that
// are there.
func checkBase(t *testing.T, objs []object) {
	t.Helper()
	byName := map[string]object{}
	var workloads []workload
	for _, o := range objs {
		key := o.kind + "/" + o.name
		if _, dup := byName[key]; dup {
			t.Errorf("%s: a second %s", o.where, key)
		}
		byName[key] = o
		switch w := o.obj.(type) {
		case *appsv1.Deployment:
			workloads = append(workloads, workload{o, w.Spec.Template.Labels, &w.Spec.Template.Spec, w.Spec.Selector.MatchLabels})
		case *appsv1.StatefulSet:
			workloads = append(workloads, workload{o, w.Spec.Template.Labels, &w.Spec.Template.Spec, w.Spec.Selector.MatchLabels})
		}
	}

	// The shape: ingest a StatefulSet, the others Deployments; each with a
	// Service and a PodDisruptionBudget; the secrets in Secrets.
	for name, kind := range map[string]string{"ingest": "StatefulSet", "transcoder": "Deployment", "archiver": "Deployment", "registry": "Deployment"} {
		for _, k := range []string{kind, "Service", "PodDisruptionBudget"} {
			if _, ok := byName[k+"/"+name]; !ok {
				t.Errorf("base: no %s %s", k, name)
			}
		}
	}
	if o, ok := byName["StatefulSet/ingest"]; ok {
		checkSpool(t, o)
	}

	selects := func(sel map[string]string) []workload {
		var ws []workload
		for _, w := range workloads {
			if len(sel) > 0 && subset(sel, w.labels) {
				ws = append(ws, w)
			}
		}
		return ws
	}
	for _, w := range workloads {
		if len(w.selector) == 0 || !subset(w.selector, w.labels) {
			t.Errorf("%s: selector %v does not match the pod labels %v", w.where, w.selector, w.labels)
		}
		checkPodSpec(t, w, byName)
	}
	for _, o := range objs {
		switch s := o.obj.(type) {
		case *corev1.Service:
			ws := selects(s.Spec.Selector)
			if len(ws) == 0 {
				t.Errorf("%s: selector %v selects no workload", o.where, s.Spec.Selector)
			}
			for _, w := range ws {
				for _, p := range s.Spec.Ports {
					n := containerPort(w.spec, p.TargetPort, p.Protocol)
					switch {
					case n == 0:
						t.Errorf("%s: port %s targets %s/%s, which %s has not", o.where, p.Name, p.TargetPort.String(), proto(p.Protocol), w.name)
					case proto(p.Protocol) == corev1.ProtocolUDP && p.Port != n:
						// RTSP over UDP and WHIP announce the ports ingest listens on.
						t.Errorf("%s: UDP port %s is %d outside and %d in the pod: publishers would be told %d", o.where, p.Name, p.Port, n, n)
					}
				}
			}
		case *policyv1.PodDisruptionBudget:
			if s.Spec.Selector == nil || len(selects(s.Spec.Selector.MatchLabels)) == 0 {
				t.Errorf("%s: selects no workload", o.where)
			}
		case *appsv1.StatefulSet:
			svc, ok := byName["Service/"+s.Spec.ServiceName].obj.(*corev1.Service)
			if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("%s: serviceName %q is not a headless Service of the base", o.where, s.Spec.ServiceName)
			}
		}
	}
}

func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func proto(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// containerPort returns the number of the pod's port that target names, or
// 0 if there is none of that protocol.
func containerPort(spec *corev1.PodSpec, target intstr.IntOrString, protocol corev1.Protocol) int32 {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if proto(p.Protocol) != proto(protocol) {
				continue
			}
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// env returns the container's settings: its env values and the data of the
// ConfigMaps it reads whole (envFrom). Values from secrets are "<secret>".
func containerEnv(t *testing.T, where string, c corev1.Container, byName map[string]object) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Errorf("%s: envFrom other than a ConfigMap", where)
			continue
		}
		cm, ok := byName["ConfigMap/"+ef.ConfigMapRef.Name].obj.(*corev1.ConfigMap)
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %q is not in the base", where, ef.ConfigMapRef.Name)
			continue
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if !secretHas(byName, ref.Name, ref.Key) {
				t.Errorf("%s: %s reads key %q of Secret %q, which the base has not", where, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = "<secret>"
		default:
			env[e.Name] = "<field>"
		}
	}
	return env
}

func secretHas(byName map[string]object, name, key string) bool {
	s, ok := byName["Secret/"+name].obj.(*corev1.Secret)
	if !ok {
		return false
	}
	_, inData := s.Data[key]
	_, inString := s.StringData[key]
	return inData || inString
}

func checkPodSpec(t *testing.T, w workload, byName map[string]object) {
	t.Helper()
	if len(w.spec.Containers) != 1 {
		t.Errorf("%s: %d containers, want 1", w.where, len(w.spec.Containers))
		return
	}
	c := w.spec.Containers[0]
	if len(c.Args) == 0 {
		t.Errorf("%s: no subcommand in args", w.where)
		return
	}
	cmd := c.Args[0]
	if cmd != w.name {
		t.Errorf("%s: runs `nokstream %s`", w.where, cmd)
	}
	env := containerEnv(t, w.where, c, byName)
	checkEnv(t, w.where, cmd, keys(env))

	// Probes go to the admin port, which is where --admin-addr listens; the
	// HTTP port is where --http-addr listens.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, flag := range map[string]string{"admin": "NOKSTREAM_ADMIN_ADDR", "http": "NOKSTREAM_HTTP_ADDR"} {
		if got := addrPort(env[flag]); got == 0 || got != ports[name] {
			t.Errorf("%s: %s=%q, but the %s port is %d", w.where, flag, env[flag], name, ports[name])
		}
	}
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		switch {
		case p == nil && kind == "startup":
		case p == nil:
			t.Errorf("%s: no %s probe", w.where, kind)
		case p.HTTPGet == nil:
			t.Errorf("%s: %s probe is not an HTTP GET", w.where, kind)
		case p.HTTPGet.Port.String() != "admin":
			t.Errorf("%s: %s probe on port %s, not admin", w.where, kind, p.HTTPGet.Port.String())
		case p.HTTPGet.Path != "/healthz" && p.HTTPGet.Path != "/readyz":
			t.Errorf("%s: %s probe on %s", w.where, kind, p.HTTPGet.Path)
		}
	}

	// Mounts name volumes that exist; a setting that points into a mounted
	// Secret names a key that Secret has.
	volumes := map[string]corev1.Volume{}
	for _, v := range w.spec.Volumes {
		volumes[v.Name] = v
	}
	claims := map[string]bool{}
	if ss, ok := w.obj.(*appsv1.StatefulSet); ok {
		for _, c := range ss.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
		}
	}
	secretFiles := map[string]bool{} // paths of the files mounted from Secrets
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok && !claims[m.Name] {
			t.Errorf("%s: mount %s has no volume", w.where, m.Name)
			continue
		}
		if v.Secret == nil {
			continue
		}
		s, ok := byName["Secret/"+v.Secret.SecretName].obj.(*corev1.Secret)
		if !ok {
			t.Errorf("%s: volume %s mounts Secret %q, which the base has not", w.where, v.Name, v.Secret.SecretName)
			continue
		}
		if len(v.Secret.Items) == 0 {
			for k := range s.StringData {
				secretFiles[filepath.Join(m.MountPath, k)] = true
			}
			for k := range s.Data {
				secretFiles[filepath.Join(m.MountPath, k)] = true
			}
		}
		for _, it := range v.Secret.Items {
			if !secretHas(byName, v.Secret.SecretName, it.Key) {
				t.Errorf("%s: volume %s mounts key %q of Secret %q, which it has not", w.where, v.Name, it.Key, v.Secret.SecretName)
			}
			secretFiles[filepath.Join(m.MountPath, it.Path)] = true
		}
	}
	for name, val := range env {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(val, m.MountPath+"/") && volumes[m.Name].Secret != nil && !secretFiles[val] {
				t.Errorf("%s: %s=%s, but no such file is mounted from the Secret", w.where, name, val)
			}
		}
	}
}

// checkSpool checks that ingest's data directory (its spool) is a volume
// claim of the StatefulSet, so that the spool outlives the pod.
func checkSpool(t *testing.T, o object) {
	t.Helper()
	ss := o.obj.(*appsv1.StatefulSet)
	c := ss.Spec.Template.Spec.Containers[0]
	data := ""
	for _, e := range c.Env {
		if e.Name == "NOKSTREAM_DATA" {
			data = e.Value
		}
	}
	if data == "" {
		t.Errorf("%s: ingest sets no NOKSTREAM_DATA (the spool)", o.where)
		return
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == data && slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == m.Name }) {
			return
		}
	}
	t.Errorf("%s: the spool %s is not on a volume claim of the StatefulSet", o.where, data)
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// addrPort returns the port of a listen address such as ":9190".
func addrPort(addr string) int32 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0
	}
	return int32(n)
}
