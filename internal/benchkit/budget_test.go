package benchkit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/qaqueue/qaqueue/internal/redistest"
)

func TestCommandStatsParse(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=0\r\ncmdstat_hset:calls=7,usec=9,usec_per_call=1.29\r\n"
	got := commandCalls(info)
	if len(got) != 2 || got["evalsha"] != 12 || got["hset"] != 7 {
		t.Fatalf("commandCalls = %v; want evalsha 12, hset 7", got)
	}
}

// Per job is the loaded window's calls less the idle window's, scaled to
// the loaded window's length; the bench's INFO and commands the idle window
// explains away are left out.
func TestPerJobSubtractsIdle(t *testing.T) {
	before := CommandStats{"evalsha": 100, "hset": 10, "info": 3, "blmove": 50}
	after := CommandStats{"evalsha": 1100, "hset": 410, "info": 9, "blmove": 54, "publish": 200}
	idle0 := CommandStats{"evalsha": 0, "blmove": 0}
	idle1 := CommandStats{"evalsha": 50, "blmove": 2} // a window half as long: ×2
	got := PerJob(after.Sub(before), idle1.Sub(idle0), 2, 100)
	want := map[string]float64{"evalsha": 9, "hset": 4, "publish": 2}
	if len(got) != len(want) {
		t.Fatalf("PerJob = %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("PerJob[%s] = %v; want %v", k, got[k], v)
		}
	}
	if total := Total(got); total != 15 {
		t.Errorf("Total = %v; want 15", total)
	}
	if top := Top(got, 2); top != "evalsha 9.0, hset 4.0" {
		t.Errorf("Top(2) = %q", top)
	}
}

func TestCostPerJob(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rd := func(at time.Duration, api, redisCPU time.Duration, mallocs float64) Reading {
		return Reading{At: t0.Add(at), Commands: CommandStats{}, RedisCPU: redisCPU,
			CPU: map[string]time.Duration{"api": api}, Mallocs: map[string]float64{"api": mallocs}}
	}
	// Idle 0–5 s: 10 ms of API CPU, 1,000 allocations, 5 ms of Redis.
	// Loaded 5–15 s (twice as long, so twice the idle cost), 1,000 jobs.
	c := CostPerJob(rd(5*time.Second, 10*time.Millisecond, 5*time.Millisecond, 1000),
		rd(15*time.Second, 1030*time.Millisecond, 1015*time.Millisecond, 2_003_000),
		rd(0, 0, 0, 0), rd(5*time.Second, 10*time.Millisecond, 5*time.Millisecond, 1000), 1000)
	if c.CPU["api"] != time.Millisecond || c.CPU["redis"] != time.Millisecond || c.Mallocs["api"] != 2000 {
		t.Errorf("CostPerJob = %+v; want 1 ms API and Redis CPU and 2,000 allocations per job", c)
	}
}

// The Meter reads a real Redis: the commands sent between two readings,
// its CPU, and its process id.
func TestMeterReadsRedis(t *testing.T) {
	db := redistest.New(t)
	rdb := redis.NewClient(db.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	m := &Meter{Redis: db.Addr}
	r0, err := m.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := rdb.Incr(ctx, "metered").Err(); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := m.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may share the server: at least this test's five.
	if d := r1.Commands.Sub(r0.Commands)["incr"]; d < 5 {
		t.Errorf("incr calls between readings = %d; want ≥ 5", d)
	}
	if r1.RedisCPU <= 0 {
		t.Errorf("Redis CPU = %v; want > 0", r1.RedisCPU)
	}
	if pid, err := RedisPID(ctx, db.Addr); err != nil || pid <= 0 {
		t.Errorf("RedisPID = %d, %v", pid, err)
	}
}

// Occupancy counts each call's time inside the window, whatever its start
// and end, and averages the durations of the calls that ended in it.
func TestOccupancy(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	answers := []Answer{
		{Start: at(-1), At: at(1), Status: 200},  // 1 s inside, ends inside (2 s)
		{Start: at(1), At: at(3), Status: 200},   // 2 s inside, ends inside (2 s)
		{Start: at(3), At: at(5), Status: 200},   // 1 s inside (window ends at 4)
		{Start: at(-3), At: at(-1), Status: 200}, // before the window
		{Start: at(0), At: at(4), Status: 200},   // 4 s inside; ends at t1, outside
	}
	inFlight, mean := Occupancy(answers, at(0), at(4))
	if inFlight != 2 || mean != 2*time.Second {
		t.Errorf("Occupancy = %v in flight, %v mean call; want 2 and 2s", inFlight, mean)
	}
}

func TestMachineCPU(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, err := machineCPU("cpu  100 0 50 800 50 0 0 0 30 0")
	if err != nil || busy != 1500*time.Millisecond || total != 10*time.Second {
		t.Errorf("machineCPU = %v, %v, %v; want 1.5s busy of 10s", busy, total, err)
	}
	if _, total, err := MachineCPU(); err != nil || total <= 0 {
		t.Errorf("MachineCPU on this machine: %v, %v", total, err)
	}
}
