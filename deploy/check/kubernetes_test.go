package check

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// dir is deploy/kubernetes, relative to this package.
const dir = "../kubernetes"

// Hand-written types for the non-core resources, with only their
// documented fields: strict decoding rejects anything else.

type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Namespace       string   `json:"namespace,omitempty"`
	Resources       []string `json:"resources"`
	Labels          []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// scaledObject is keda.sh/v1alpha1 ScaledObject.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval  *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod   *int32 `json:"cooldownPeriod,omitempty"`
		IdleReplicaCount *int32 `json:"idleReplicaCount,omitempty"`
		MinReplicaCount  *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount  *int32 `json:"maxReplicaCount,omitempty"`
		Advanced         *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string `json:"name,omitempty"`
				Behavior *struct {
					ScaleUp   *hpaRules `json:"scaleUp,omitempty"`
					ScaleDown *hpaRules `json:"scaleDown,omitempty"`
				} `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			MetricType        string            `json:"metricType,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int32 `json:"stabilizationWindowSeconds,omitempty"`
	SelectPolicy               string `json:"selectPolicy,omitempty"`
	Policies                   []struct {
		Type          string `json:"type"`
		Value         int32  `json:"value"`
		PeriodSeconds int32  `json:"periodSeconds"`
	} `json:"policies,omitempty"`
}

// triggerAuthentication is keda.sh/v1alpha1 TriggerAuthentication (the
// secretTargetRef and env forms).
type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef,omitempty"`
		Env []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName,omitempty"`
		} `json:"env,omitempty"`
	} `json:"spec"`
}

// redisTriggerKeys are the KEDA redis (lists) scaler's metadata fields.
var redisTriggerKeys = []string{
	"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "usernameFromEnv", "passwordFromEnv",
	"listName", "listLength", "activationListLength", "enableTLS", "unsafeSsl", "databaseIndex",
}

// redisAuthParams are the parameters a TriggerAuthentication may give it.
var redisAuthParams = []string{"address", "host", "port", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}

type manifests struct {
	kustomization *kustomization
	files         []string
	deployments   map[string]*appsv1.Deployment
	statefulSets  map[string]*appsv1.StatefulSet
	services      map[string]*corev1.Service
	configMaps    map[string]*corev1.ConfigMap
	secrets       map[string]*corev1.Secret
	pdbs          map[string]*policyv1.PodDisruptionBudget
	scaled        map[string]*scaledObject
	auths         map[string]*triggerAuthentication
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// load decodes every document of every manifest strictly.
func load(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		services:   map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, scaled: map[string]*scaledObject{},
		auths: map[string]*triggerAuthentication{},
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	for _, f := range files {
		m.files = append(m.files, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			if err := m.add([]byte(doc)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// strict decodes doc as the API server does in strict mode: field names
// match case-sensitively, and unknown or duplicate fields are errors.
func strict[T any](doc []byte) (*T, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	v := new(T)
	strictErrs, err := kjson.UnmarshalStrict(js, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	return v, nil
}

func (m *manifests) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var err error
	name := func(o metav1.ObjectMeta) (string, error) {
		if o.Name == "" {
			return "", fmt.Errorf("%s without metadata.name", tm.Kind)
		}
		return o.Name, nil
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		m.kustomization, err = strict[kustomization](doc)
	case "apps/v1 Deployment":
		var d *appsv1.Deployment
		if d, err = strict[appsv1.Deployment](doc); err == nil {
			var n string
			if n, err = name(d.ObjectMeta); err == nil {
				m.deployments[n] = d
			}
		}
	case "apps/v1 StatefulSet":
		var s *appsv1.StatefulSet
		if s, err = strict[appsv1.StatefulSet](doc); err == nil {
			var n string
			if n, err = name(s.ObjectMeta); err == nil {
				m.statefulSets[n] = s
			}
		}
	case "v1 Service":
		var s *corev1.Service
		if s, err = strict[corev1.Service](doc); err == nil {
			m.services[s.Name] = s
		}
	case "v1 ConfigMap":
		var c *corev1.ConfigMap
		if c, err = strict[corev1.ConfigMap](doc); err == nil {
			m.configMaps[c.Name] = c
		}
	case "v1 Secret":
		var s *corev1.Secret
		if s, err = strict[corev1.Secret](doc); err == nil {
			m.secrets[s.Name] = s
		}
	case "policy/v1 PodDisruptionBudget":
		var p *policyv1.PodDisruptionBudget
		if p, err = strict[policyv1.PodDisruptionBudget](doc); err == nil {
			m.pdbs[p.Name] = p
		}
	case "keda.sh/v1alpha1 ScaledObject":
		var s *scaledObject
		if s, err = strict[scaledObject](doc); err == nil {
			m.scaled[s.Name] = s
		}
	case "keda.sh/v1alpha1 TriggerAuthentication":
		var a *triggerAuthentication
		if a, err = strict[triggerAuthentication](doc); err == nil {
			m.auths[a.Name] = a
		}
	default:
		return fmt.Errorf("unexpected resource %q %q: teach check_test.go its type", tm.APIVersion, tm.Kind)
	}
	return err
}

// secretKeys are a Secret's keys, from data and stringData.
func secretKeys(s *corev1.Secret) map[string]string {
	keys := map[string]string{}
	for k, v := range s.Data {
		keys[k] = string(v)
	}
	for k, v := range s.StringData {
		keys[k] = v
	}
	return keys
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	m := load(t)
	if m.kustomization == nil {
		t.Fatal("no kustomization.yaml")
	}
	var want []string
	for _, f := range m.files {
		if f != "kustomization.yaml" {
			want = append(want, f)
		}
	}
	got := slices.Clone(m.kustomization.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("kustomization resources %v, files %v", got, want)
	}
	for _, img := range m.kustomization.Images {
		found := false
		for _, d := range m.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				found = found || c.Image == img.Name
			}
		}
		if !found {
			t.Errorf("kustomization image %q is used by no container", img.Name)
		}
	}
}

func TestDeployments(t *testing.T) {
	m := load(t)
	for _, name := range []string{"qaqueue-api", "qaqueue-worker"} {
		d := m.deployments[name]
		if d == nil {
			t.Fatalf("no Deployment %s", name)
		}
		t.Run(name, func(t *testing.T) {
			checkDeployment(t, m, d)
		})
	}
}

func checkDeployment(t *testing.T, m *manifests, d *appsv1.Deployment) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector: %v", err)
	}
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %s does not match the pod template's labels %v", sel, d.Spec.Template.Labels)
	}
	ps := d.Spec.Template.Spec
	if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("pod securityContext must run as a non-root user: %+v", sc)
	}
	if ps.TerminationGracePeriodSeconds == nil {
		t.Error("no terminationGracePeriodSeconds")
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image == "" || len(c.Args) != 1 {
		t.Errorf("image %q args %v", c.Image, c.Args)
	}
	if csc := c.SecurityContext; csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext: %+v", csc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("resources %s: request %s limit %s", r, req.String(), lim.String())
		}
	}
	// Probes: /livez and /readyz on a port the container declares.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe}
	wantPath := map[string]string{"readiness": "/readyz", "liveness": "/livez"}
	for kind, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", kind)
			continue
		}
		if p.HTTPGet.Path != wantPath[kind] {
			t.Errorf("%s probe path %q, want %q", kind, p.HTTPGet.Path, wantPath[kind])
		}
		if !portDeclared(p.HTTPGet.Port, ports) {
			t.Errorf("%s probe port %s is not a container port %v", kind, p.HTTPGet.Port.String(), ports)
		}
	}
	if p := c.StartupProbe; p != nil && (p.HTTPGet == nil || !portDeclared(p.HTTPGet.Port, ports)) {
		t.Errorf("startup probe: %+v", p)
	}
	// Configuration comes from the ConfigMap and the Secret, which exist.
	var cm, sec bool
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm = m.configMaps[ef.ConfigMapRef.Name] != nil
		case ef.SecretRef != nil:
			sec = m.secrets[ef.SecretRef.Name] != nil
		}
	}
	if !cm || !sec {
		t.Errorf("envFrom must name the ConfigMap and the Secret defined here: %+v", c.EnvFrom)
	}
	// The port the process listens on is the one declared.
	env := mergedEnv(m, c)
	listen := map[string]string{"api": "PORT", "worker": "WORKER_METRICS_PORT"}[c.Args[0]]
	if listen == "" {
		t.Fatalf("unexpected command %v", c.Args)
	}
	if v := env[listen]; v != "" && !slices.Contains(slices.Collect(mapValues(ports)), atoi(v)) {
		t.Errorf("%s=%s is not a container port %v", listen, v, ports)
	}
	for _, vm := range c.VolumeMounts {
		if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) {
			t.Errorf("volume mount %s has no volume", vm.Name)
		}
	}
	if c.Args[0] == "worker" {
		// The grace period outlasts SHUTDOWN_TIMEOUT, or pods die mid-job.
		st, err := time.ParseDuration(env["SHUTDOWN_TIMEOUT"])
		if err != nil {
			t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", env["SHUTDOWN_TIMEOUT"], err)
		}
		if grace := time.Duration(*ps.TerminationGracePeriodSeconds) * time.Second; grace <= st {
			t.Errorf("terminationGracePeriodSeconds %s must exceed SHUTDOWN_TIMEOUT %s", grace, st)
		}
		// The disk cache is writable under a read-only root.
		if !slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == env["CACHE_DIR"] }) {
			t.Errorf("CACHE_DIR %q is not a mounted volume", env["CACHE_DIR"])
		}
	}
}

func mapValues(m map[string]int32) func(func(int32) bool) {
	return func(yield func(int32) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func atoi(s string) int32 {
	var n int32
	_, _ = fmt.Sscan(s, &n)
	return n
}

func portDeclared(p intstr.IntOrString, ports map[string]int32) bool {
	if p.Type == intstr.String {
		_, ok := ports[p.StrVal]
		return ok
	}
	for _, v := range ports {
		if v == p.IntVal {
			return true
		}
	}
	return false
}

// mergedEnv is the container's environment as Kubernetes builds it:
// envFrom in order, then env.
func mergedEnv(m *manifests, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && m.configMaps[ef.ConfigMapRef.Name] != nil {
			for k, v := range m.configMaps[ef.ConfigMapRef.Name].Data {
				env[k] = v
			}
		}
		if ef.SecretRef != nil && m.secrets[ef.SecretRef.Name] != nil {
			for k, v := range secretKeys(m.secrets[ef.SecretRef.Name]) {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func TestServiceAndPDBsSelectPods(t *testing.T) {
	m := load(t)
	svc := m.services["qaqueue-api"]
	if svc == nil {
		t.Fatal("no Service qaqueue-api")
	}
	api := m.deployments["qaqueue-api"]
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(api.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the API pods", svc.Spec.Selector)
	}
	ports := map[string]int32{}
	for _, p := range api.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range svc.Spec.Ports {
		if !portDeclared(p.TargetPort, ports) {
			t.Errorf("Service targetPort %s is not an API container port", p.TargetPort.String())
		}
	}
	for _, name := range []string{"qaqueue-api", "qaqueue-worker"} {
		pdb := m.pdbs[name]
		if pdb == nil {
			t.Errorf("no PodDisruptionBudget %s", name)
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(m.deployments[name].Spec.Template.Labels)) {
			t.Errorf("PDB %s selector %v does not select Deployment %s's pods", name, pdb.Spec.Selector, name)
		}
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			t.Errorf("PDB %s needs exactly one of minAvailable and maxUnavailable", name)
		}
	}
}

// TestRedis: the queue's Redis keeps its data (AOF on a volume), refuses
// writes rather than evicting, and does so below its memory limit, so it is
// never OOM-killed with a full AOF to replay; its Service is where the
// Secret points.
func TestRedis(t *testing.T) {
	m := load(t)
	ss, svc := m.statefulSets["redis"], m.services["redis"]
	if ss == nil || svc == nil {
		t.Fatal("no StatefulSet and Service redis")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ss.Spec.Template.Labels)) {
		t.Errorf("Service redis selects %v, not the Redis pods", svc.Spec.Selector)
	}
	c := ss.Spec.Template.Spec.Containers[0]
	args := map[string]string{}
	for i := 0; i+1 < len(c.Args); i += 2 {
		args[c.Args[i]] = c.Args[i+1]
	}
	if args["--appendonly"] != "yes" || args["--maxmemory-policy"] != "noeviction" {
		t.Errorf("redis args %v: want --appendonly yes and --maxmemory-policy noeviction", c.Args)
	}
	max, err := redisBytes(args["--maxmemory"])
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if err != nil || limit.IsZero() || max.Cmp(limit) >= 0 || max.Value() < limit.Value()/2 {
		t.Errorf("--maxmemory %q (%v) must be below the memory limit %s, and not far below", args["--maxmemory"], err, limit.String())
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == "/data" }) ||
		len(ss.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("Redis's /data is not on a volume claim")
	}
	sec := secretKeys(m.secrets["qaqueue-secrets"])
	if !strings.Contains(sec["REDIS_URL"], "@redis:6379/") || sec["REDIS_ADDR"] != "redis:6379" {
		t.Errorf("the Secret points at %q / %q, not the Service redis", sec["REDIS_URL"], sec["REDIS_ADDR"])
	}
}

// redisBytes parses a size as redis.conf writes it: 1k is 1000 bytes, 1kb
// 1024, and so on for m(b) and g(b).
func redisBytes(v string) (resource.Quantity, error) {
	v = strings.ToLower(v)
	for _, u := range []struct{ redis, k8s string }{{"gb", "Gi"}, {"mb", "Mi"}, {"kb", "Ki"}, {"g", "G"}, {"m", "M"}, {"k", "k"}} {
		if n, ok := strings.CutSuffix(v, u.redis); ok {
			return resource.ParseQuantity(n + u.k8s)
		}
	}
	return resource.ParseQuantity(v)
}

func TestKEDAScalesWorkersOnPendingQueues(t *testing.T) {
	m := load(t)
	so := m.scaled["qaqueue-worker"]
	if so == nil {
		t.Fatal("no ScaledObject qaqueue-worker")
	}
	if so.Spec.ScaleTargetRef.Name != "qaqueue-worker" || m.deployments[so.Spec.ScaleTargetRef.Name] == nil {
		t.Errorf("scaleTargetRef %q is not the worker Deployment", so.Spec.ScaleTargetRef.Name)
	}
	if so.Spec.MinReplicaCount == nil || so.Spec.MaxReplicaCount == nil || *so.Spec.MinReplicaCount > *so.Spec.MaxReplicaCount {
		t.Errorf("replica bounds %v..%v", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
	}
	var lists []string
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "redis" {
			t.Errorf("trigger type %q, want redis", tr.Type)
			continue
		}
		for k := range tr.Metadata {
			if !slices.Contains(redisTriggerKeys, k) {
				t.Errorf("redis trigger metadata %q is not a KEDA redis scaler field", k)
			}
		}
		lists = append(lists, tr.Metadata["listName"])
		if atoi(tr.Metadata["listLength"]) <= 0 {
			t.Errorf("listLength %q", tr.Metadata["listLength"])
		}
		if tr.AuthenticationRef == nil || m.auths[tr.AuthenticationRef.Name] == nil {
			t.Errorf("trigger %s: authenticationRef names no TriggerAuthentication here", tr.Metadata["listName"])
		}
		if tr.Metadata["address"] == "" && tr.Metadata["addressFromEnv"] == "" && tr.AuthenticationRef == nil {
			t.Errorf("trigger %s has no Redis address", tr.Metadata["listName"])
		}
	}
	// asynq's pending list of each queue (package deploy's test checks
	// these against a real asynq enqueue).
	want := []string{"asynq:{batch}:pending", "asynq:{interactive}:pending"}
	sort.Strings(lists)
	if !slices.Equal(lists, want) {
		t.Errorf("listNames %v, want %v", lists, want)
	}
	for name, a := range m.auths {
		for _, ref := range a.Spec.SecretTargetRef {
			if !slices.Contains(redisAuthParams, ref.Parameter) {
				t.Errorf("TriggerAuthentication %s: %q is not a redis scaler parameter", name, ref.Parameter)
			}
			s := m.secrets[ref.Name]
			if s == nil {
				t.Errorf("TriggerAuthentication %s: no Secret %s", name, ref.Name)
				continue
			}
			if _, ok := secretKeys(s)[ref.Key]; !ok {
				t.Errorf("TriggerAuthentication %s: Secret %s has no key %s", name, ref.Name, ref.Key)
			}
		}
	}
}

// TestStrictDecodingCatchesMistakes keeps the check honest: a misspelt
// field and a wrong type fail.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(dir, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mut := range []struct{ from, to string }{
		{"terminationGracePeriodSeconds: 150", "terminationGracePeriodSecond: 150"},
		{"terminationGracePeriodSeconds: 150", "terminationGracePeriodSeconds: soon"},
		{"readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"},
	} {
		bad := bytes.Replace(b, []byte(mut.from), []byte(mut.to), 1)
		if bytes.Equal(bad, b) {
			t.Fatalf("worker.yaml has no %q", mut.from)
		}
		m := &manifests{deployments: map[string]*appsv1.Deployment{}}
		if err := m.add(bad); err == nil {
			t.Errorf("%q accepted", mut.to)
		}
	}
}
