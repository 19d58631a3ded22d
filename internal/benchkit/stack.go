package benchkit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Stack starts `qa api` and `qa worker` processes from one qa binary against
// one Redis database and one LM.
type Stack struct {
	// Bin is the qa binary.
	Bin string
	// Dir is the children's working directory (and HOME): a directory of
	// their own, so no .env or cache of the caller's is read.
	Dir string
	// Env is the environment every child gets, before the per-process extras
	// (see BaseEnv).
	Env []string
	// Pins and CPUs, when Pins is on, run the children on CPUs (taskset).
	Pins Pins
	CPUs string
}

// start runs `qa <role>` with env, pinned when the stack is.
func (s Stack) start(name, role string, env []string) (*Proc, error) {
	bin, args := s.Pins.Wrap(s.CPUs, s.Bin, role)
	return StartProc(name, bin, s.Dir, env, args...)
}

// BaseEnv is a minimal environment for qa processes on redisURL with the
// OpenAI-compatible LM at lmBase: anonymous access (no API keys to manage),
// loopback only, no disk cache, warnings only in the logs.
func BaseEnv(dir, redisURL, lmBase string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir(),
		"REDIS_URL=" + redisURL, "LM_API_BASE=" + lmBase, "LM_API_KEY=x",
		"HOST=127.0.0.1", "ALLOW_ANONYMOUS=true", "METRICS_PUBLIC=true",
		"CACHE_DISK_ENABLED=false", "LOG_LEVEL=warn", "LOG_FORMAT=json",
		"GIN_MODE=release",
	}
}

// StartAPI runs `qa api` on a free loopback port and waits for its /readyz.
// base is its http://host:port.
func (s Stack) StartAPI(ctx context.Context, extraEnv ...string) (p *Proc, base string, err error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	env := append(append(append([]string{}, s.Env...), "PORT="+strconv.Itoa(port)), extraEnv...)
	p, err = s.start("qa api", "api", env)
	if err != nil {
		return nil, "", err
	}
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := WaitReady(ctx, p, base+"/readyz", 60*time.Second); err != nil {
		p.Kill()
		return nil, "", err
	}
	return p, base, nil
}

// StartWorker runs `qa worker` with its health port on a free loopback port
// and waits for its /readyz (served once the worker takes jobs). metrics is
// its http://host:port.
func (s Stack) StartWorker(ctx context.Context, extraEnv ...string) (p *Proc, metrics string, err error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	env := append(append(append([]string{}, s.Env...), "WORKER_METRICS_PORT="+strconv.Itoa(port), "PORT=0"), extraEnv...)
	p, err = s.start("qa worker", "worker", env)
	if err != nil {
		return nil, "", err
	}
	metrics = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := WaitReady(ctx, p, metrics+"/readyz", 60*time.Second); err != nil {
		p.Kill()
		return nil, "", fmt.Errorf("worker: %w", err)
	}
	return p, metrics, nil
}
