package redisconn_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/redis/go-redis/v9"
)

// startReplica runs a redis-server replicating master and waits for the
// link to be up.
func startReplica(t *testing.T, master string) *redistest.Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(master)
	r, err := redistest.Start(t.TempDir(), "--replicaof", host, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	testwait.Until(t, "the replica link to be up", func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return r
}

func infoField(ctx context.Context, c *redis.Client, field string) string {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// TestSentinelFailoverRunsJobs runs jobs through Sentinel (a master, a
// replica and a redis-sentinel started here), fails the master over while
// jobs are submitted and running, and requires every job to complete.
//
// The failover is the planned, lossless one an operator runs (README,
// "Redis"): pause writes on the master, let the replica catch up, SENTINEL
// FAILOVER, point the old master at the new one, unpause. Redis replication
// is asynchronous, so an unplanned failover may lose the master's last
// writes; that is not what this test is about.
func TestSentinelFailoverRunsJobs(t *testing.T) {
	t.Parallel()
	redistest.Require(t, "redis-server")
	redistest.Require(t, "redis-sentinel")
	ctx := context.Background()

	master, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Stop)
	replica := startReplica(t, master.Addr)
	sentinel := redistest.NewSentinel(t, "mymaster", master.Addr)
	sc := sentinel.Client()
	defer sc.Close()
	// Sentinel learns replicas from the master's INFO; SENTINEL FAILOVER
	// needs one it considers healthy.
	testwait.Until(t, "Sentinel to know the replica", func() bool {
		rs, err := sc.Replicas(ctx, "mymaster").Result()
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r["name"] == replica.Addr && r["master-link-status"] == "ok" && !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") {
				return true
			}
		}
		return false
	})

	o := redisconn.Options{SentinelAddrs: []string{sentinel.Addr}, SentinelMaster: "mymaster", PoolSize: 50}
	rdb := open(t, o)
	if err := redisconn.Ping(ctx, rdb, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, rdb)
	s.lm.SetTokensPerSecond(400) // a job takes long enough to be in flight during the failover
	s.runJobs(t, 5, "before")

	load := s.startLoad(25*time.Millisecond, "across")
	load.waitCount(t, 15)

	// The planned failover.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer mc.Close()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	start := time.Now()
	if err := mc.Do(ctx, "CLIENT", "PAUSE", "30000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 10*time.Second, "the replica to catch up", func() bool {
		off := infoField(ctx, mc, "master_repl_offset")
		return off != "" && infoField(ctx, rc, "master_repl_offset") == off
	})
	caughtUp := time.Since(start)
	if err := sc.Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v\n%s", err, sentinel.Log())
	}
	testwait.Within(t, 30*time.Second, "Sentinel to name the replica master", func() bool {
		addr, err := sentinel.MasterAddr(ctx)
		return err == nil && addr == replica.Addr
	})
	switched := time.Since(start)
	host, port, _ := net.SplitHostPort(replica.Addr)
	if err := mc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	if err := mc.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	unpaused := time.Since(start)
	atSwitch := load.count()

	load.waitCount(t, atSwitch+15)
	ids, failedSubmits := load.finish(t)
	waitStart := time.Now()
	if bad := s.waitAll(t, ids, 90*time.Second); len(bad) > 0 {
		t.Fatalf("jobs did not complete across the failover: %v", bad)
	}
	t.Logf("failover: replica caught up %s after the pause, Sentinel switched at %s, old master demoted and unpaused at %s; "+
		"%d jobs submitted across it (%d submit calls retried), all completed %s after the last submit",
		caughtUp.Round(time.Millisecond), switched.Round(time.Millisecond), unpaused.Round(time.Millisecond),
		len(ids), failedSubmits, time.Since(waitStart).Round(time.Millisecond))

	// The jobs after the switch live on the new master, and the stack keeps
	// working there.
	if n, err := rc.Exists(ctx, "qa:job:"+ids[len(ids)-1]).Result(); err != nil || n != 1 {
		t.Fatalf("last job on the new master: %d %v", n, err)
	}
	if role := infoField(ctx, rc, "role"); role != "master" {
		t.Fatalf("replica role %q after failover", role)
	}
	s.runJobs(t, 5, "after")

	// asynqmon's connection follows Sentinel to the new master too.
	opt, err := redisconn.AsynqConnOpt(o, 2)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	info, err := insp.GetQueueInfo("interactive")
	if err != nil || info.Processed == 0 {
		t.Fatalf("asynq inspector through Sentinel: %+v %v", info, err)
	}
}
