package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a redis-sentinel process started for tests, monitoring one
// master.
type Sentinel struct {
	Addr   string
	Dir    string
	Master string
	mu     sync.Mutex
	cmd    *exec.Cmd
}

// StartSentinel runs redis-sentinel on a free loopback port, monitoring the
// master named master at masterAddr with a quorum of 1 and a one-second
// down-after, its files in dir. extraConf lines are appended to its
// configuration file (redis-sentinel rewrites that file as it learns).
func StartSentinel(dir, master, masterAddr string, extraConf ...string) (*Sentinel, error) {
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		return nil, err
	}
	sport, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := []string{
		"port " + strconv.Itoa(sport),
		"bind 127.0.0.1",
		"dir " + dir,
		"logfile " + filepath.Join(dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s %s %s 1", master, host, port),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", master),
		fmt.Sprintf("sentinel failover-timeout %s 10000", master),
		fmt.Sprintf("sentinel parallel-syncs %s 1", master),
	}
	conf = append(conf, extraConf...)
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-sentinel", path)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-sentinel: %w", err)
	}
	s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(sport)), Dir: dir, Master: master, cmd: cmd}
	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.GetMasterAddrByName(context.Background(), master).Result()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			return nil, fmt.Errorf("redis-sentinel on %s did not answer: %w\n%s", s.Addr, err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NewSentinel starts a Sentinel for t (skipped without redis-sentinel
// unless CI=true) and stops it when t ends.
func NewSentinel(t testing.TB, master, masterAddr string, extraConf ...string) *Sentinel {
	t.Helper()
	Require(t, "redis-sentinel")
	s, err := StartSentinel(t.TempDir(), master, masterAddr, extraConf...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Client is a Sentinel client; the caller closes it.
func (s *Sentinel) Client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
}

// MasterAddr is where the Sentinel says the master is now.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	c := s.Client()
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, s.Master).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Log is the Sentinel's log so far, for failure messages.
func (s *Sentinel) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sentinel.log"))
	return string(b)
}

// Stop kills the Sentinel.
func (s *Sentinel) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
