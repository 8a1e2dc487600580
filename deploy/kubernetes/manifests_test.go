// Package kubernetes tests the manifests beside it: each decodes strictly (an unknown or
// duplicate field is an error) into its typed Kubernetes object, and the objects agree with
// each other and with wasmloop's flags in the container's args.
package kubernetes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The manifests, by file, with the apiVersion and kind each must have.
var files = []struct{ name, apiVersion, kind string }{
	{"deployment.yaml", "apps/v1", "Deployment"},
	{"service.yaml", "v1", "Service"},
	{"configmap.yaml", "v1", "ConfigMap"},
	{"hpa.yaml", "autoscaling/v2", "HorizontalPodAutoscaler"},
	{"pdb.yaml", "policy/v1", "PodDisruptionBudget"},
}

type manifests struct {
	dep *appsv1.Deployment
	svc *corev1.Service
	cm  *corev1.ConfigMap
	hpa *autoscalingv2.HorizontalPodAutoscaler
	pdb *policyv1.PodDisruptionBudget
}

// decodeStrict converts YAML to JSON (a duplicate key is an error) and decodes it into obj
// with unknown fields as errors, then checks apiVersion and kind.
func decodeStrict(name string, data []byte, apiVersion, kind string, obj any) error {
	if bytes.Contains(data, []byte("\n---")) {
		return fmt.Errorf("%s: one object per file", name)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var tm metav1.TypeMeta
	json.Unmarshal(js, &tm)
	if tm.APIVersion != apiVersion || tm.Kind != kind {
		return fmt.Errorf("%s: %s %s, want %s %s", name, tm.APIVersion, tm.Kind, apiVersion, kind)
	}
	return nil
}

func decode(src map[string][]byte) (*manifests, error) {
	m := &manifests{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ConfigMap{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}}
	objs := []any{m.dep, m.svc, m.cm, m.hpa, m.pdb}
	var errs []error
	for i, f := range files {
		errs = append(errs, decodeStrict(f.name, src[f.name], f.apiVersion, f.kind, objs[i]))
	}
	return m, errors.Join(errs...)
}

// runFlags are the wasmloop flags the manifests depend on, read from the container's args.
type runFlags struct {
	workers         int
	memoryLimit     int64 // bytes
	bufferBudget    int64
	shutdownTimeout time.Duration
	admin           string
	port            int // the guest's PORT (--env PORT=)
	allowListen     string
	module          string
}

// parseSize reads wasmloop's SIZE: bytes, or k, m, g for KiB, MiB, GiB.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func parseArgs(args []string) (runFlags, error) {
	f := runFlags{bufferBudget: 256 << 20, shutdownTimeout: 10 * time.Second, memoryLimit: 256 << 20} // wasmloop's defaults
	if len(args) < 2 || args[0] != "run" {
		return f, fmt.Errorf("args %q: want run [flags] module", args)
	}
	var err error
	rest := args[1:]
	for len(rest) > 1 && strings.HasPrefix(rest[0], "--") {
		name, val := rest[0], rest[1]
		rest = rest[2:]
		switch name {
		case "--workers":
			f.workers, err = strconv.Atoi(val)
		case "--memory-limit":
			f.memoryLimit, err = parseSize(val)
		case "--buffer-budget":
			f.bufferBudget, err = parseSize(val)
		case "--shutdown-timeout":
			f.shutdownTimeout, err = time.ParseDuration(val)
		case "--admin":
			f.admin = val
		case "--allow-listen":
			f.allowListen = val
		case "--env":
			if p, ok := strings.CutPrefix(val, "PORT="); ok {
				f.port, err = strconv.Atoi(p)
			}
		}
		if err != nil {
			return f, fmt.Errorf("%s %s: %w", name, val, err)
		}
	}
	if len(rest) != 1 {
		return f, fmt.Errorf("args %q: want one module after the flags, have %q", args, rest)
	}
	f.module = rest[0]
	if f.workers < 1 || f.admin == "" || f.port == 0 {
		return f, fmt.Errorf("args %q: --workers N (the CPU follows it), --admin and --env PORT= must be given", args)
	}
	return f, nil
}

// portOf resolves a probe's or Service's port (a number or a container port's name).
func portOf(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

func namedPort(c *corev1.Container, name string) int32 {
	return portOf(c, intstr.FromString(name))
}

// check returns every broken rule.
func check(m *manifests) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	dep, pod := m.dep, &m.dep.Spec.Template.Spec
	podLabels := labels.Set(m.dep.Spec.Template.Labels)
	if len(pod.Containers) != 1 {
		return append(errs, fmt.Errorf("deployment: %d containers, want 1", len(pod.Containers)))
	}
	c := &pod.Containers[0]
	f, err := parseArgs(c.Args)
	if err != nil {
		return append(errs, fmt.Errorf("deployment: %w", err))
	}

	// Selectors.
	matches := func(what string, sel *metav1.LabelSelector) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || sel == nil || s.Empty() || !s.Matches(podLabels) {
			fail("%s's selector %v does not select the pods (labels %v): %v", what, sel, podLabels, err)
		}
	}
	matches("deployment", dep.Spec.Selector)
	matches("pod disruption budget", m.pdb.Spec.Selector)
	if len(m.svc.Spec.Selector) == 0 || !labels.SelectorFromSet(m.svc.Spec.Selector).Matches(podLabels) {
		fail("service's selector %v does not select the pods (labels %v)", m.svc.Spec.Selector, podLabels)
	}

	// Ports: the guest's PORT and --allow-listen are the container's "http" port, --admin its
	// "admin" port, reachable from the kubelet (not loopback).
	if p := namedPort(c, "http"); p != int32(f.port) {
		fail("container port http is %d, the guest's --env PORT=%d", p, f.port)
	}
	if f.allowListen != "" {
		if _, p, err := splitPort(f.allowListen); err != nil || p != f.port {
			fail("--allow-listen %s is not the guest's PORT %d (%v)", f.allowListen, f.port, err)
		}
	}
	host, adminPort, err := splitPort(f.admin)
	if err != nil {
		fail("--admin %s: %v", f.admin, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		fail("--admin %s listens on %s only: the kubelet's probes and Prometheus reach the pod's address", f.admin, host)
	}
	if p := namedPort(c, "admin"); p != int32(adminPort) {
		fail("container port admin is %d, --admin is %s", p, f.admin)
	}
	for _, sp := range m.svc.Spec.Ports {
		if t := portOf(c, sp.TargetPort); t != int32(f.port) {
			fail("service port %s targets container port %d, not the guest's %d", sp.Name, t, f.port)
		}
	}

	// Probes: liveness /healthz, readiness /readyz, on the admin port.
	probe := func(what string, p *corev1.Probe, paths ...string) {
		if p == nil || p.HTTPGet == nil {
			fail("%s probe: want an httpGet of %s on the admin port", what, paths)
			return
		}
		okPath := false
		for _, want := range paths {
			okPath = okPath || p.HTTPGet.Path == want
		}
		if !okPath || portOf(c, p.HTTPGet.Port) != int32(adminPort) {
			fail("%s probe gets %s on port %d; want %s on the admin port %d", what, p.HTTPGet.Path, portOf(c, p.HTTPGet.Port), paths, adminPort)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	if c.StartupProbe != nil {
		probe("startup", c.StartupProbe, "/readyz", "/healthz")
	}

	// Shutdown: the grace period covers preStop and --shutdown-timeout.
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil {
			fail("preStop: only a sleep action works in the image (no shell)")
		} else {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if pod.TerminationGracePeriodSeconds == nil {
		fail("terminationGracePeriodSeconds is not set (the default, 30 s, is not derived from --shutdown-timeout)")
	} else if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace <= preStop+f.shutdownTimeout {
		fail("terminationGracePeriodSeconds %v is not more than preStop %v + --shutdown-timeout %v: SIGKILL would cut the drain", grace, preStop, f.shutdownTimeout)
	}

	// Resources: CPU = --workers; memory covers every worker's instance and the buffers.
	workers := resource.MustParse(strconv.Itoa(f.workers))
	for what, rl := range map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits} {
		if cpu, ok := rl[corev1.ResourceCPU]; !ok || cpu.Cmp(workers) != 0 {
			fail("cpu %s %v, want --workers %d", what, rl.Cpu(), f.workers)
		}
		need := int64(f.workers)*f.memoryLimit + f.bufferBudget
		if mem, ok := rl[corev1.ResourceMemory]; !ok || mem.Value() < need {
			fail("memory %s %v is less than --workers x --memory-limit + --buffer-budget = %d MiB", what, rl.Memory(), need>>20)
		}
	}

	// Security: non-root, read-only root, no privilege escalation; /tmp (the module cache)
	// writable.
	psc, csc := pod.SecurityContext, c.SecurityContext
	nonRoot := (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) || (csc != nil && csc.RunAsNonRoot != nil && *csc.RunAsNonRoot)
	if !nonRoot {
		fail("runAsNonRoot is not true")
	}
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		fail("readOnlyRootFilesystem is not true")
	}
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		fail("allowPrivilegeEscalation is not false")
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	tmp := false
	for _, vm := range c.VolumeMounts {
		tmp = tmp || (vm.MountPath == "/tmp" && !vm.ReadOnly && volumes[vm.Name].EmptyDir != nil)
	}
	if !tmp {
		fail("no writable emptyDir at /tmp: the image's module cache (XDG_CACHE_HOME=/tmp/cache) needs one under a read-only root")
	}

	// The module the args run is the ConfigMap's key, through the volume mount.
	key := ""
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(f.module, strings.TrimSuffix(vm.MountPath, "/")+"/")
		v := volumes[vm.Name]
		if !ok || v.ConfigMap == nil {
			continue
		}
		if v.ConfigMap.Name != m.cm.Name {
			fail("volume %s mounts ConfigMap %q, not %q", v.Name, v.ConfigMap.Name, m.cm.Name)
		}
		if len(v.ConfigMap.Items) == 0 {
			key = rel
		}
		for _, it := range v.ConfigMap.Items {
			if path.Clean(it.Path) == rel {
				key = it.Key
			}
		}
	}
	if wasm, ok := m.cm.BinaryData[key]; key == "" || !ok {
		fail("the args run %s, which no ConfigMap key (%v) reaches through a volume mount", f.module, keys(m.cm.BinaryData))
	} else {
		for _, want := range []string{"\x00asm\x01\x00\x00\x00", "wasmloop_abi_v1", "wasmloop_on_start", "0.0.0.0"} {
			if !bytes.Contains(wasm, []byte(want)) {
				fail("ConfigMap key %s is not a wasmloop guest listening on 0.0.0.0: no %q", key, want)
			}
		}
		if len(wasm) > 1<<20 {
			fail("ConfigMap key %s: %d bytes, more than a ConfigMap holds", key, len(wasm))
		}
	}

	// The autoscaler scales this Deployment on CPU.
	ref := m.hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != dep.Name {
		fail("the HPA targets %s %s %s, not apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, dep.Name)
	}
	cpuMetric := false
	for _, mt := range m.hpa.Spec.Metrics {
		cpuMetric = cpuMetric || (mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
			mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && mt.Resource.Target.AverageUtilization != nil)
	}
	if !cpuMetric {
		fail("the HPA has no CPU utilization metric")
	}
	if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas < 2 || m.hpa.Spec.MaxReplicas < *m.hpa.Spec.MinReplicas {
		fail("the HPA's replicas: min %v max %d; want 2 <= min <= max (the PDB keeps one of them)", m.hpa.Spec.MinReplicas, m.hpa.Spec.MaxReplicas)
	}
	if m.pdb.Spec.MaxUnavailable == nil && m.pdb.Spec.MinAvailable == nil {
		fail("the PDB sets neither maxUnavailable nor minAvailable")
	}
	return errs
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// splitPort reads ":9090", "0.0.0.0:9090" or "127.0.0.1:9090".
func splitPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("%q has no port", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	return strings.Trim(addr[:i], "[]"), p, err
}

func readAll(t *testing.T) map[string][]byte {
	t.Helper()
	src := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f.name)
		if err != nil {
			t.Fatal(err)
		}
		src[f.name] = b
	}
	yamls, _ := filepath.Glob("*.yaml")
	if len(yamls) != len(files) {
		t.Errorf("manifests %v; the test knows %d: add a new one to files", yamls, len(files))
	}
	return src
}

func validate(src map[string][]byte) []error {
	m, err := decode(src)
	if err != nil {
		return []error{err}
	}
	return check(m)
}

func TestManifests(t *testing.T) {
	for _, err := range validate(readAll(t)) {
		t.Error(err)
	}
}

// TestBrokenManifests breaks one thing at a time; each variant must be rejected.
func TestBrokenManifests(t *testing.T) {
	good := readAll(t)
	for _, tc := range []struct{ name, file, old, new string }{
		{"unknown field", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriod: 30"},
		{"duplicate field", "service.yaml", "  ports:", "  type: ClusterIP\n  type: NodePort\n  ports:"},
		{"unknown field in the HPA", "hpa.yaml", "minReplicas: 2", "minReplica: 2"},
		{"second object in a file", "pdb.yaml", "apiVersion:", "---\napiVersion:"},
		{"wrong apiVersion", "hpa.yaml", "autoscaling/v2", "autoscaling/v1"},
		{"grace = preStop + shutdown", "deployment.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 25"},
		{"longer shutdown timeout", "deployment.yaml", "- 20s", "- 40s"},
		{"longer preStop", "deployment.yaml", "seconds: 5", "seconds: 15"},
		{"preStop exec", "deployment.yaml", "sleep:\n                seconds: 5", "exec:\n                command: [sleep, \"5\"]"},
		{"more workers than CPU", "deployment.yaml", "- --workers\n            - \"2\"", "- --workers\n            - \"3\""},
		{"CPU request below workers", "deployment.yaml", "cpu: \"2\"", "cpu: 1500m"},
		{"memory below workers x limit", "deployment.yaml", "memory: 768Mi", "memory: 512Mi"},
		{"larger memory limit per worker", "deployment.yaml", "- 256m", "- 512m"},
		{"admin port", "deployment.yaml", "- :9090", "- :9091"},
		{"admin on loopback", "deployment.yaml", "- :9090", "- 127.0.0.1:9090"},
		{"guest port", "deployment.yaml", "PORT=8080", "PORT=8081"},
		{"allow-listen port", "deployment.yaml", "- :8080", "- :8081"},
		{"liveness path", "deployment.yaml", "path: /healthz", "path: /health"},
		{"readiness path", "deployment.yaml", "path: /readyz", "path: /ready"},
		{"readiness on the guest's port", "deployment.yaml", "path: /readyz\n              port: admin", "path: /readyz\n              port: http"},
		{"deployment selector", "deployment.yaml", "matchLabels:\n      app.kubernetes.io/name: wasmloop", "matchLabels:\n      app.kubernetes.io/name: other"},
		{"service selector", "service.yaml", "selector:\n    app.kubernetes.io/name: wasmloop", "selector:\n    app.kubernetes.io/name: web"},
		{"service targets admin", "service.yaml", "targetPort: http", "targetPort: admin"},
		{"PDB selector", "pdb.yaml", "app.kubernetes.io/name: wasmloop", "app: wasmloop"},
		{"HPA target name", "hpa.yaml", "kind: Deployment\n    name: wasmloop", "kind: Deployment\n    name: web"},
		{"HPA target kind", "hpa.yaml", "kind: Deployment", "kind: StatefulSet"},
		{"HPA on memory", "hpa.yaml", "name: cpu", "name: memory"},
		{"ConfigMap key", "configmap.yaml", "  app.wasm: ", "  hello.wasm: "},
		{"ConfigMap name", "deployment.yaml", "name: wasmloop-app", "name: wasmloop-apps"},
		{"volume item path", "deployment.yaml", "path: app.wasm", "path: main.wasm"},
		{"module in args", "deployment.yaml", "- /app/app.wasm", "- /app/main.wasm"},
		{"mount path", "deployment.yaml", "mountPath: /app", "mountPath: /srv"},
		{"not WebAssembly", "configmap.yaml", "app.wasm: AGFzbQ", "app.wasm: AGFzbA"},
		{"writable root", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"},
		{"root allowed", "deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false"},
		{"privilege escalation", "deployment.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"},
		{"no /tmp", "deployment.yaml", "mountPath: /tmp", "mountPath: /var/tmp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := map[string][]byte{}
			for k, v := range good {
				src[k] = v
			}
			if !bytes.Contains(src[tc.file], []byte(tc.old)) {
				t.Fatalf("%s has no %q to break", tc.file, tc.old)
			}
			src[tc.file] = bytes.Replace(src[tc.file], []byte(tc.old), []byte(tc.new), 1)
			errs := validate(src)
			if len(errs) == 0 {
				t.Fatalf("%s with %q for %q was accepted", tc.file, tc.new, tc.old)
			}
			t.Logf("rejected: %v", errs[0])
		})
	}
}
