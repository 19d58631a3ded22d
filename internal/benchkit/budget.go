package benchkit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// CommandStats is a Redis server's calls per command (INFO commandstats;
// commands run by scripts included).
type CommandStats map[string]int64

// ReadCommandStats reads INFO commandstats.
func ReadCommandStats(ctx context.Context, addr string) (CommandStats, error) {
	calls, err := CommandCalls(ctx, addr)
	return CommandStats(calls), err
}

// probeCommands are the bench's own reads of Redis, not the service's.
var probeCommands = map[string]bool{"info": true}

// Sub is the calls made between before and s, per command.
func (s CommandStats) Sub(before CommandStats) CommandStats {
	out := CommandStats{}
	for name, c := range s {
		if d := c - before[name]; d > 0 {
			out[name] = d
		}
	}
	return out
}

// PerJob is what n jobs cost per job in each command: the calls of the
// loaded window less those of an idle window (scaled by idleScale, the
// loaded window's length over the idle one's), so that the service's
// background loops (heartbeats, pollers, recoverers) are not charged to the
// jobs. The bench's own INFO calls are left out; a command the idle window
// used as much of counts 0.
func PerJob(loaded, idle CommandStats, idleScale float64, n int) map[string]float64 {
	out := map[string]float64{}
	for name, c := range loaded {
		if probeCommands[name] {
			continue
		}
		if d := perJob(float64(c), float64(idle[name]), idleScale, n); d > 0 {
			out[name] = d
		}
	}
	return out
}

func perJob(loaded, idle, idleScale float64, n int) float64 {
	return max(0, loaded-idle*idleScale) / float64(max(n, 1))
}

// Total is the sum of per-job calls.
func Total(perJob map[string]float64) float64 {
	var t float64
	for _, v := range perJob {
		t += v
	}
	return t
}

// Top lists the k commands with the most calls per job, most first
// ("evalsha 6.0, hset 4.0"); k ≤ 0 lists them all.
func Top(perJob map[string]float64, k int) string {
	names := make([]string, 0, len(perJob))
	for n := range perJob {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(perJob[b], perJob[a]), cmp.Compare(a, b)) })
	if k > 0 && len(names) > k {
		names = names[:k]
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.1f", n, perJob[n])
	}
	return strings.Join(parts, ", ")
}

// RedisInfo reads one field of a Redis server's INFO section.
func RedisInfo(ctx context.Context, addr, section, field string) (string, error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	s, err := admin.Info(ctx, section).Result()
	if err != nil {
		return "", fmt.Errorf("read redis info: %w", err)
	}
	return infoField(s, field)
}

func infoField(info, field string) (string, error) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("read redis info: no %s", field)
}

// RedisCPU is the CPU time a Redis server has used, user + system, all its
// threads (INFO cpu).
func RedisCPU(ctx context.Context, addr string) (time.Duration, error) {
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	s, err := admin.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("read redis cpu: %w", err)
	}
	var total float64
	for _, f := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := infoField(s, f)
		if err != nil {
			return 0, err
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("read redis cpu: %s: %w", f, err)
		}
		total += x
	}
	return time.Duration(total * float64(time.Second)), nil
}

// RedisPID is a Redis server's process id (INFO server).
func RedisPID(ctx context.Context, addr string) (int, error) {
	v, err := RedisInfo(ctx, addr, "server", "process_id")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// Meter reads, at one point, what the bench charges to jobs: Redis's calls
// per command and CPU, and each measured process's CPU time and heap
// allocations (go_memstats_mallocs_total from its /metrics).
type Meter struct {
	Redis string
	Procs []Metered
}

// Metered is one measured process: the child and its Prometheus endpoint
// ("" when it has none: no allocation count).
type Metered struct {
	Name    string
	Proc    *Proc
	Metrics string
}

// Reading is a Meter's reading.
type Reading struct {
	At       time.Time
	Commands CommandStats
	RedisCPU time.Duration
	CPU      map[string]time.Duration
	Mallocs  map[string]float64
}

// Read takes a reading.
func (m *Meter) Read(ctx context.Context) (Reading, error) {
	r := Reading{At: time.Now(), CPU: map[string]time.Duration{}, Mallocs: map[string]float64{}}
	var err error
	if r.Commands, err = ReadCommandStats(ctx, m.Redis); err != nil {
		return r, err
	}
	if r.RedisCPU, err = RedisCPU(ctx, m.Redis); err != nil {
		return r, err
	}
	for _, p := range m.Procs {
		if r.CPU[p.Name], err = p.Proc.CPUTime(); err != nil {
			return r, err
		}
		if p.Metrics == "" {
			continue
		}
		v, err := Metrics(ctx, p.Metrics, "go_memstats_mallocs_total")
		if err != nil {
			return r, fmt.Errorf("read %s allocations: %w", p.Name, err)
		}
		r.Mallocs[p.Name] = v["go_memstats_mallocs_total"]
	}
	return r, nil
}

// Cost is what one job cost, from readings around n jobs, less an idle
// window's readings.
type Cost struct {
	Commands map[string]float64
	// CPU per process and "redis", per job.
	CPU map[string]time.Duration
	// Mallocs per process, per job.
	Mallocs map[string]float64
}

// CostPerJob is (loaded − idle) / n for each figure, the idle window's
// figures scaled to the loaded window's length.
func CostPerJob(before, after, idleBefore, idleAfter Reading, n int) Cost {
	scale := 1.0
	if idle := idleAfter.At.Sub(idleBefore.At); idle > 0 {
		scale = float64(after.At.Sub(before.At)) / float64(idle)
	}
	c := Cost{
		Commands: PerJob(after.Commands.Sub(before.Commands), idleAfter.Commands.Sub(idleBefore.Commands), scale, n),
		CPU:      map[string]time.Duration{},
		Mallocs:  map[string]float64{},
	}
	for name := range after.CPU {
		c.CPU[name] = time.Duration(perJob(float64(after.CPU[name]-before.CPU[name]), float64(idleAfter.CPU[name]-idleBefore.CPU[name]), scale, n))
	}
	c.CPU["redis"] = time.Duration(perJob(float64(after.RedisCPU-before.RedisCPU), float64(idleAfter.RedisCPU-idleBefore.RedisCPU), scale, n))
	for name := range after.Mallocs {
		c.Mallocs[name] = perJob(after.Mallocs[name]-before.Mallocs[name], idleAfter.Mallocs[name]-idleBefore.Mallocs[name], scale, n)
	}
	return c
}
