// Package deploy holds step 10's manifests and image, and this test, which
// decodes every manifest strictly into the real Kubernetes API types (a
// misspelt or misplaced field fails it, as the API server would reject it)
// and checks that the pieces agree: the time budget, the probes, the
// ports, the selectors, the Dockerfile's ENTRYPOINT.
//
// It is a module of its own, so that the root go.mod, which readers study,
// does not pull in k8s.io/api; make test runs it too.
package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// exitMargin is the program's own margin (10-kubernetes/drain.go).
const exitMargin = time.Second

// decode reads a manifest into v, strictly: an unknown or duplicated field
// is an error. It checks apiVersion and kind as well.
func decode(t *testing.T, file, apiVersion, kind string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var meta struct{ APIVersion, Kind string }
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.APIVersion != apiVersion || meta.Kind != kind {
		t.Fatalf("%s is %s %s, want %s %s", file, meta.APIVersion, meta.Kind, apiVersion, kind)
	}
}

func deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	decode(t, "deployment.yaml", "apps/v1", "Deployment", &d)
	return &d
}

// TestStrictDecodingCatchesTypos: the decoder used here does reject a
// misspelt field, so the other tests' decoding means something.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	data, err := os.ReadFile("deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	typo := bytes.Replace(data, []byte("terminationGracePeriodSeconds"), []byte("terminationGracePeriodSecond"), 1)
	if err := yaml.UnmarshalStrict(typo, &appsv1.Deployment{}); err == nil || !strings.Contains(err.Error(), "terminationGracePeriodSecond") {
		t.Errorf("a misspelt field decoded without an error naming it: %v", err)
	}
}

// programFlags parses the container's args with the program's flags.
type programFlags struct {
	addr                                     string
	drainDelay, shutdownTimeout, gracePeriod time.Duration
}

func parseArgs(t *testing.T, args []string) programFlags {
	t.Helper()
	var f programFlags
	fs := flag.NewFlagSet("10-kubernetes", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", "localhost:8080", "")
	fs.DurationVar(&f.drainDelay, "drain-delay", 5*time.Second, "")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "")
	fs.DurationVar(&f.gracePeriod, "grace-period", 30*time.Second, "")
	if err := fs.Parse(args); err != nil {
		t.Fatalf("args %q: %v", args, err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("args %q: the program rejects the stray %q", args, fs.Arg(0))
	}
	return f
}

// TestDeployment: 3 replicas, a rolling update that never goes below 3
// ready ones, and a budget that fits: preStop sleep + drain delay +
// shutdown timeout + the program's margin within
// terminationGracePeriodSeconds, which the program is also told.
func TestDeployment(t *testing.T) {
	d := deployment(t)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas: %v, want 3", d.Spec.Replicas)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() < 1 {
		t.Errorf("strategy: %s, want RollingUpdate with maxUnavailable 0 and maxSurge 1 or more", js(d.Spec.Strategy))
	}
	pod := d.Spec.Template.Spec
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Command) != 0 {
		t.Errorf("command %q replaces the image's exec-form ENTRYPOINT; give flags in args", c.Command)
	}
	f := parseArgs(t, c.Args)

	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if s := c.Lifecycle.PreStop.Sleep; s != nil {
			preStop = time.Duration(s.Seconds) * time.Second
		} else {
			t.Errorf("preStop %s: only a sleep action has a length this test can add up", js(c.Lifecycle.PreStop))
		}
	}
	if need := preStop + f.drainDelay + f.shutdownTimeout + exitMargin; need > grace {
		t.Errorf("preStop sleep %s + -drain-delay %s + -shutdown-timeout %s + %s = %s, more than terminationGracePeriodSeconds %s",
			preStop, f.drainDelay, f.shutdownTimeout, exitMargin, need, grace)
	}
	if f.gracePeriod != grace {
		t.Errorf("-grace-period %s, but terminationGracePeriodSeconds is %s: the program checks its budget against the wrong number", f.gracePeriod, grace)
	}
	if f.drainDelay == 0 && preStop == 0 {
		t.Error("no drain delay and no preStop sleep: the pod closes its listener while the endpoints still send it connections")
	}

	// The program listens where the container port says.
	_, port, err := net.SplitHostPort(f.addr)
	if err != nil {
		t.Fatalf("-addr %q: %v", f.addr, err)
	}
	if len(c.Ports) != 1 || strconv.Itoa(int(c.Ports[0].ContainerPort)) != port {
		t.Errorf("container ports %s, want one, %s, as -addr %s", js(c.Ports), port, f.addr)
	}
	if host, _, _ := net.SplitHostPort(f.addr); host != "" {
		t.Errorf("-addr %s listens on %s only; the kubelet and kube-proxy reach the pod on its IP: use -addr :%s", f.addr, host, port)
	}

	// The probes ask the program's own routes, on its port.
	routes := programRoutes(t)
	for _, p := range []struct {
		name, path string
		probe      *corev1.Probe
	}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/livez", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: %s, want an httpGet of %s", p.name, js(p.probe), p.path)
			continue
		}
		get := p.probe.HTTPGet
		if get.Path != p.path || !routes[get.Path] {
			t.Errorf("%s asks %q; want %s, which the program serves (it serves %v)", p.name, get.Path, p.path, routes)
		}
		if get.Port.String() != c.Ports[0].Name && get.Port.String() != port {
			t.Errorf("%s asks port %s, not the container's %s (%s)", p.name, get.Port.String(), c.Ports[0].Name, port)
		}
	}
	// The readiness probe turns the endpoint's serving condition off
	// after SIGTERM, and must do so before the listener closes: at most
	// failureThreshold periods, since the first failing probe comes
	// within a period of the signal, leaving the rest of the delay for
	// the change to propagate. And one slow probe must not take a ready
	// pod out of every Service.
	if rp := c.ReadinessProbe; rp != nil {
		period := time.Duration(orDefault(rp.PeriodSeconds, 10)) * time.Second
		threshold := orDefault(rp.FailureThreshold, 3)
		if threshold < 2 {
			t.Errorf("readinessProbe failureThreshold %d: one slow probe takes the pod out of rotation", threshold)
		}
		if notServing := time.Duration(threshold) * period; notServing >= f.drainDelay {
			t.Errorf("readinessProbe turns serving off up to %d × %s = %s after SIGTERM, not within -drain-delay %s",
				threshold, period, notServing, f.drainDelay)
		}
	}
	// After the delay the listener is closed and the liveness probe
	// cannot connect. Kubelets since kubernetes#110191 (1.25, and 1.22.11,
	// 1.23.8, 1.24.2) stop liveness probes on a pod being deleted; an
	// older one, or another platform's health check,
	// would kill the pod at the failureThreshold-th failure, (threshold -
	// 1) × period after the first, which can come as the listener closes.
	// That must come after the shutdown timeout, not at it.
	if lp := c.LivenessProbe; lp != nil {
		period := time.Duration(orDefault(lp.PeriodSeconds, 10)) * time.Second
		threshold := orDefault(lp.FailureThreshold, 3)
		if kill := time.Duration(threshold-1) * period; kill <= f.shutdownTimeout {
			t.Errorf("livenessProbe kills (%d - 1) × %s = %s after its first failure, not after -shutdown-timeout %s: a long drain would be killed on a kubelet that still probes it",
				threshold, period, kill, f.shutdownTimeout)
		}
	}
}

// orDefault is v, or the API's default d when v is unset.
func orDefault(v, d int32) int32 {
	if v == 0 {
		return d
	}
	return v
}

// programRoutes finds the routes the program registers, from its source.
func programRoutes(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../main.go")
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, m := range regexp.MustCompile(`mux\.HandleFunc\("GET (/[^"{ ]*)`).FindAllStringSubmatch(string(src), -1) {
		routes[m[1]] = true
	}
	return routes
}

// TestServiceAndBudget: the Service and the PodDisruptionBudget select the
// Deployment's pods, and the Service targets the container's port.
func TestServiceAndBudget(t *testing.T) {
	d := deployment(t)
	labels := d.Spec.Template.Labels
	var svc corev1.Service
	decode(t, "service.yaml", "v1", "Service", &svc)
	var pdb policyv1.PodDisruptionBudget
	decode(t, "pdb.yaml", "policy/v1", "PodDisruptionBudget", &pdb)

	matches := func(selector map[string]string) bool {
		if len(selector) == 0 {
			return false
		}
		for k, v := range selector {
			if labels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(d.Spec.Selector.MatchLabels) {
		t.Errorf("the Deployment's selector %v does not match its pods' labels %v", d.Spec.Selector.MatchLabels, labels)
	}
	if !matches(svc.Spec.Selector) {
		t.Errorf("the Service selects %v, not the pods' labels %v", svc.Spec.Selector, labels)
	}
	if pdb.Spec.Selector == nil || !matches(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("the PodDisruptionBudget selects %s, not the pods' labels %v", js(pdb.Spec.Selector), labels)
	}
	if mu := pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() < 1 || mu.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("the PodDisruptionBudget's maxUnavailable is %s: want at least 1 (or a drain can never evict) and fewer than the replicas", js(mu))
	}
	port := d.Spec.Template.Spec.Containers[0].Ports[0]
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("the Service has %d ports, want 1", len(svc.Spec.Ports))
	}
	if tp := svc.Spec.Ports[0].TargetPort.String(); tp != port.Name && tp != strconv.Itoa(int(port.ContainerPort)) {
		t.Errorf("the Service targets port %s, not the container's %s (%d)", tp, port.Name, port.ContainerPort)
	}
}

// TestDockerfile: two stages, a static binary, and an exec-form
// ENTRYPOINT, so that the program is PID 1 and gets SIGTERM itself.
func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	var entrypoint, build string
	for _, line := range strings.Split(string(src), "\n") {
		word, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(word) {
		case "FROM":
			from = append(from, rest)
		case "ENTRYPOINT":
			entrypoint = rest
		case "RUN":
			if strings.Contains(rest, "go build") {
				build = rest
			}
		}
	}
	if len(from) < 2 {
		t.Errorf("%d FROM lines, want a build stage and a runtime stage", len(from))
	}
	if !strings.Contains(build, "CGO_ENABLED=0") {
		t.Errorf("the go build (%q) does not set CGO_ENABLED=0: the binary may need a libc the runtime image lacks", build)
	}
	var argv []string
	if err := json.Unmarshal([]byte(entrypoint), &argv); err != nil || len(argv) == 0 {
		t.Errorf("ENTRYPOINT %s is not in exec form (a JSON array): /bin/sh -c would be PID 1 and keep the SIGTERM from the program", entrypoint)
	}
}

// js shows a value as JSON, for messages.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
