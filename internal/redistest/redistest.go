// Package redistest gives each test its own, empty database on a real
// redis-server, so tests can run in parallel without flushing each other.
//
// Where the server comes from, in order:
//  1. QA_TEST_REDIS_ADDR (host:port of a server started with many databases,
//     as .ci/run does);
//  2. a redis-server found on PATH, started on a free port for this test binary;
//  3. the embedded miniredis, with a notice — refused when CI=true, because CI
//     must test against the real thing.
//
// It also writes a database out key by key and reads one back in (Dump,
// Restore; snapshot.go), so a test can start from what other code, such as a
// previous release, left in Redis.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/qaqueue/qaqueue/internal/redisproc"
	"github.com/redis/go-redis/v9"
)

// Databases is how many logical databases a server started here has. A test
// takes one; the counter wraps, so a test binary may run this many at once.
const Databases = redisproc.Databases

// Server is a redis-server process (see redisproc).
type Server = redisproc.Server

// Start runs redis-server on a free loopback port with its files in dir.
func Start(dir string, extraArgs ...string) (*Server, error) {
	return redisproc.Start(dir, extraArgs...)
}

// DB is one test's private Redis database.
type DB struct {
	// Addr is host:port of the server.
	Addr string
	// Index is the logical database number.
	Index int
	// Client is connected to Index; it is closed when the test ends.
	Client *redis.Client
	// Server is set when the server was started by this package for the test
	// (see NewServer); nil for the shared server.
	Server *Server
}

// URL is a redis:// URL for the database.
func (d *DB) URL() string { return fmt.Sprintf("redis://%s/%d", d.Addr, d.Index) }

// Options are the go-redis options for the database.
func (d *DB) Options() *redis.Options { return &redis.Options{Addr: d.Addr, DB: d.Index} }

type shared struct {
	once sync.Once
	addr string
	err  error
	srv  *Server
	mini *miniredis.Miniredis
}

var pool shared // one server per test binary; a test helper, not service state

// New returns a fresh database for t on the shared server.
func New(t testing.TB) *DB {
	t.Helper()
	pool.once.Do(func() { pool.addr, pool.err = startShared() })
	if pool.err != nil {
		t.Fatalf("redistest: %v", pool.err)
	}
	return open(t, pool.addr, nil)
}

// NewServer starts a redis-server of the test's own (for tests that stop or
// restart Redis) and returns database 0 on it. It requires redis-server.
func NewServer(t testing.TB, extraArgs ...string) *DB {
	t.Helper()
	srv, err := Start(t.TempDir(), extraArgs...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(srv.Stop)
	return open(t, srv.Addr, srv)
}

func open(t testing.TB, addr string, srv *Server) *DB {
	t.Helper()
	ctx := context.Background()
	index := 0
	if srv == nil {
		admin := redis.NewClient(&redis.Options{Addr: addr})
		n, err := admin.Incr(ctx, "redistest:next-db").Result()
		_ = admin.Close()
		if err != nil {
			t.Fatalf("redistest: allocate database: %v", err)
		}
		index = 1 + int(n%int64(Databases-1))
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DB: index})
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("redistest: flush database %d: %v", index, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &DB{Addr: addr, Index: index, Client: c, Server: srv}
}

func startShared() (string, error) {
	if addr := os.Getenv("QA_TEST_REDIS_ADDR"); addr != "" {
		return addr, nil
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		dir, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return "", err
		}
		srv, err := Start(dir)
		if err != nil {
			return "", err
		}
		pool.srv = srv
		return srv.Addr, nil
	}
	if os.Getenv("CI") == "true" {
		return "", fmt.Errorf("redis-server not found on PATH and CI=true: install it (apt-get install -y redis-server) or set QA_TEST_REDIS_ADDR")
	}
	fmt.Fprintln(os.Stderr, "redistest: redis-server not found; using the embedded miniredis (install redis-server to test against the real thing)")
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.Start(); err != nil {
		return "", err
	}
	pool.mini = m
	return m.Addr(), nil
}

func freePort() (int, error) { return redisproc.FreePort() }
