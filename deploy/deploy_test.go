package deploy_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/store"
)

// root is the repository, relative to this package.
const root = ".."

// extraVars are variables read outside config.Config: the LM provider's
// own key (LiteLLM's names) and what KEDA reads from the Secret.
var extraVars = []string{"OPENAI_API_KEY", "REDIS_ADDR", "REDIS_PASSWORD"}

func known(name string) bool {
	return slices.Contains(config.Variables(), name) || slices.Contains(extraVars, name)
}

func read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnvExampleListsEveryVariable(t *testing.T) {
	t.Parallel()
	assign := regexp.MustCompile(`^#? ?([A-Z][A-Z0-9_]*)=`)
	listed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(read(t, ".env.example"))))
	for sc.Scan() {
		if m := assign.FindStringSubmatch(sc.Text()); m != nil {
			if !known(m[1]) {
				t.Errorf(".env.example sets %s, which nothing reads", m[1])
			}
			listed[m[1]] = true
		}
	}
	for _, v := range config.Variables() {
		if !listed[v] {
			t.Errorf(".env.example does not list %s", v)
		}
	}
	// As shipped (everything commented out), it is a valid .env.
	dotenv, err := config.LoadDotEnv(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dotenv) != 0 {
		t.Errorf(".env.example sets %v; keep every line commented out", dotenv)
	}
}

// TestEnvExampleShowsTheDefaults: below its header, .env.example lists each
// variable commented out at its default (the header's lines are examples),
// so uncommenting a line changes nothing, and a default changed in config
// shows here until the file follows.
func TestEnvExampleShowsTheDefaults(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, s := range config.Default().Settings() {
		defaults[s.Name] = s.Value
	}
	assign := regexp.MustCompile(`^# ([A-Z][A-Z0-9_]*)=(.*)$`)
	seen := map[string]bool{}
	inHeader := true
	for line := range strings.Lines(string(read(t, ".env.example"))) {
		line = strings.TrimRight(line, "\r\n")
		inHeader = inHeader && !strings.HasPrefix(line, "# ==== ")
		m := assign.FindStringSubmatch(line)
		if inHeader || m == nil || !slices.Contains(config.Variables(), m[1]) {
			continue
		}
		name := m[1]
		if seen[name] {
			t.Errorf(".env.example lists %s twice", name)
		}
		seen[name] = true
		dotenv, err := config.ParseDotEnv(".env.example", []byte(name+"="+m[2]))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		cfg, err := config.Parse(config.MapLookup(nil), dotenv)
		if err != nil {
			t.Errorf(".env.example: %s=%s does not parse: %v", name, m[2], err)
			continue
		}
		for _, s := range cfg.Settings() {
			if s.Name == name && s.Value != defaults[name] {
				t.Errorf(".env.example shows %s=%s, but its default is %q (config/defaults.go)", name, m[2], defaults[name])
			}
		}
	}
}

type composeFile struct {
	Services map[string]struct {
		Image           string            `yaml:"image"`
		Command         []string          `yaml:"command"`
		Environment     map[string]string `yaml:"environment"`
		Ports           []string          `yaml:"ports"`
		ContainerName   string            `yaml:"container_name"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		Healthcheck     struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Volumes []string `yaml:"volumes"`
		Deploy  struct {
			Resources struct {
				Limits struct {
					Memory string `yaml:"memory"`
				} `yaml:"limits"`
			} `yaml:"resources"`
		} `yaml:"deploy"`
	} `yaml:"services"`
}

// memBytes parses a memory size as Compose ("1g") and redis.conf ("640mb")
// write it: k, m and g are powers of 1024 in Compose and with a b in Redis.
func memBytes(v string) (int64, bool) {
	v = strings.TrimSuffix(strings.ToLower(v), "b")
	mult := int64(1)
	if i := strings.IndexAny(v, "kmg"); i == len(v)-1 && i > 0 {
		mult = map[byte]int64{'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}[v[i]]
		v = v[:i]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n * mult, err == nil
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	var cf composeFile
	if err := yaml.Unmarshal(read(t, "docker-compose.yml"), &cf); err != nil {
		t.Fatal(err)
	}
	shutdown := config.Default().Queue.ShutdownTimeout
	for _, name := range []string{"api", "worker"} {
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if !known(k) {
				t.Errorf("%s sets %s, which nothing reads", name, k)
			}
			env[k] = v
		}
		if _, _, err := config.Load(config.MapLookup(env), nil); err != nil {
			t.Errorf("%s's environment is not a valid configuration: %v", name, err)
		}
		if s.Command[0] != name || s.Healthcheck.Test[1] != "/qa" || s.Healthcheck.Test[2] != "healthcheck" {
			t.Errorf("%s: command %v healthcheck %v", name, s.Command, s.Healthcheck.Test)
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || grace <= shutdown {
			t.Errorf("%s: stop_grace_period %q must exceed SHUTDOWN_TIMEOUT (%s)", name, s.StopGracePeriod, shutdown)
		}
	}
	w := cf.Services["worker"]
	if w.ContainerName != "" || len(w.Ports) != 0 {
		t.Errorf("worker has container_name %q / ports %v: --scale would fail", w.ContainerName, w.Ports)
	}
	if !slices.ContainsFunc(w.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+w.Environment["CACHE_DIR"]) }) {
		t.Errorf("worker CACHE_DIR %q is not on a volume: %v", w.Environment["CACHE_DIR"], w.Volumes)
	}
	redis := strings.Join(cf.Services["redis"].Command, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
		if !strings.Contains(redis, want) {
			t.Errorf("redis command %q lacks %q", redis, want)
		}
	}
	// A full Redis must refuse writes before the container's limit kills it.
	cmd := cf.Services["redis"].Command
	limit, okLimit := memBytes(cf.Services["redis"].Deploy.Resources.Limits.Memory)
	i := slices.Index(cmd, "--maxmemory")
	if i < 0 || i+1 == len(cmd) || !okLimit {
		t.Errorf("redis needs --maxmemory and a memory limit: %v, limit %q", cmd, cf.Services["redis"].Deploy.Resources.Limits.Memory)
	} else if max, ok := memBytes(cmd[i+1]); !ok || max >= limit || max < limit/2 {
		t.Errorf("redis --maxmemory %s must be below its memory limit (%d bytes), and not far below", cmd[i+1], limit)
	}
	prom := string(read(t, "deploy/prometheus.yml"))
	for _, target := range []string{`"api:8000"`, `names: ["worker"]`, "port: 9091"} {
		if !strings.Contains(prom, target) {
			t.Errorf("deploy/prometheus.yml does not scrape %s", target)
		}
	}
}

// TestDockerfiles checks what CI cannot build: both images compile the same
// way (the line deploy/check.sh runs), run as non-root with a healthcheck
// through `qa healthcheck`.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	build := `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/qa ./cmd/qa`
	for _, tc := range []struct{ file, cmd, health string }{
		{"Dockerfile.api", `CMD ["api"]`, `HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/qa", "healthcheck"]`},
		{"Dockerfile.worker", `CMD ["worker"]`, `HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 CMD ["/qa", "healthcheck", "--worker"]`},
	} {
		df := string(read(t, tc.file))
		for _, want := range []string{build, tc.cmd, tc.health, `ENTRYPOINT ["/qa"]`, "USER 65532:65532", "STOPSIGNAL SIGTERM", "FROM gcr.io/distroless/static-debian12:nonroot"} {
			if !strings.Contains(df, want) {
				t.Errorf("%s lacks %q", tc.file, want)
			}
		}
	}
}

type k8sData struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// TestKubernetesConfigIsValid loads the ConfigMap and the Secret the way the
// pods see them and requires a valid configuration.
func TestKubernetesConfigIsValid(t *testing.T) {
	t.Parallel()
	env := map[string]string{}
	for _, f := range []string{"deploy/kubernetes/configmap.yaml", "deploy/kubernetes/secret.yaml"} {
		var d k8sData
		if err := yaml.Unmarshal(read(t, f), &d); err != nil {
			t.Fatal(err)
		}
		for _, m := range []map[string]string{d.Data, d.StringData} {
			for k, v := range m {
				if !known(k) {
					t.Errorf("%s sets %s, which nothing reads", f, k)
				}
				env[k] = v
			}
		}
	}
	env["HOST"], env["PORT"] = "0.0.0.0", "8000"
	if _, _, err := config.Load(config.MapLookup(env), nil); err != nil {
		t.Fatalf("the ConfigMap and Secret are not a valid configuration: %v", err)
	}
}

// TestKEDAListsAreAsynqPendingLists enqueues through the real client and
// finds each task in the list keda.yaml watches.
func TestKEDAListsAreAsynqPendingLists(t *testing.T) {
	t.Parallel()
	keda := string(read(t, "deploy/kubernetes/keda.yaml"))
	db := redistest.New(t)
	jobStore, err := store.NewJobs(db.Client, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	client := store.NewClient(db.Client, jobStore)
	ctx := context.Background()
	for _, q := range []string{jobs.QueueInteractive, jobs.QueueBatch} {
		list := "asynq:{" + q + "}:pending"
		if !strings.Contains(keda, `listName: "`+list+`"`) {
			t.Errorf("keda.yaml does not watch %s", list)
		}
		if _, err := client.Submit(ctx, store.SubmitRequest{Spec: jobs.Spec{ClientSpec: jobs.QuestionSpec("Why?"), ServerSpec: jobs.ServerSpec{Queue: q}}}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.Client.LLen(ctx, list).Result(); err != nil || n != 1 {
			t.Errorf("LLEN %s = %d, %v; want the task just submitted", list, n, err)
		}
	}
}
