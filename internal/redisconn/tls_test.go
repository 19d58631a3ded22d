package redisconn_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/qaqueue/qaqueue/internal/redisconn"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func open(t *testing.T, o redisconn.Options) redis.UniversalClient {
	t.Helper()
	c, err := redisconn.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedissRunsJobs connects through rediss:// to a TLS-only port of a
// redis-server whose certificate a throwaway CA signed, and runs jobs end
// to end over it: submit, a real worker, the QA program, the fake LM.
func TestRedissRunsJobs(t *testing.T) {
	t.Parallel()
	srv := redistest.NewTLSServer(t)
	ctx := context.Background()

	// Verified TLS under both names in the certificate.
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c := open(t, redisconn.Options{URL: srv.URL(host, 2), TLSConfig: srv.CA.ClientTLS()})
		if err := redisconn.Ping(ctx, c, 10*time.Second); err != nil {
			t.Fatalf("rediss://%s: %v", host, err)
		}
	}
	// The system roots do not know the test CA: verification is on.
	c := open(t, redisconn.Options{URL: srv.URL("127.0.0.1", 2)})
	if err := c.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("rediss:// without the CA: %v, want a certificate error", err)
	}
	// Plain redis:// to the TLS port does not get through.
	c = open(t, redisconn.Options{URL: strings.Replace(srv.URL("127.0.0.1", 2), "rediss://", "redis://", 1)})
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("plain redis:// to the TLS port answered")
	}

	o := redisconn.Options{URL: srv.URL("localhost", 3), TLSConfig: srv.CA.ClientTLS(), PoolSize: 50}
	rdb := open(t, o)
	s := startStack(t, rdb)
	ids := s.runJobs(t, 20, "tls")

	// asynqmon's connection reaches the same database over TLS.
	opt, err := redisconn.AsynqConnOpt(o, 2)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	qs, err := insp.Queues()
	if err != nil || len(qs) == 0 {
		t.Fatalf("asynq inspector over TLS: %v %v", qs, err)
	}
	// The jobs are in database 3 of the server, seen through the plain
	// admin port too.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 3})
	defer admin.Close()
	if n, err := admin.Exists(ctx, "qa:job:"+ids[0]).Result(); err != nil || n != 1 {
		t.Fatalf("job record in db 3: %d %v", n, err)
	}
}

// TestRedissTrustsSSLCertFile checks what the README tells operators with a
// private CA: Go reads SSL_CERT_FILE as the system roots, so rediss:// works
// without any TLS setting of ours. The roots load once per process, so the
// check runs in a child process.
func TestRedissTrustsSSLCertFile(t *testing.T) {
	if url := os.Getenv("REDISCONN_CHILD_URL"); url != "" {
		c, err := redisconn.Open(redisconn.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Parallel()
	srv := redistest.NewTLSServer(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedissTrustsSSLCertFile$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDISCONN_CHILD_URL="+srv.URL("localhost", 0), "SSL_CERT_FILE="+srv.CA.CAFile, "SSL_CERT_DIR=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child with SSL_CERT_FILE: %v\n%s", err, out)
	}
}

func TestAsynqConnOptMatchesOpen(t *testing.T) {
	t.Parallel()
	opt, err := redisconn.AsynqConnOpt(redisconn.Options{URL: "rediss://u:p@redis.example:6380/4"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	co, ok := opt.(asynq.RedisClientOpt)
	if !ok || co.Addr != "redis.example:6380" || co.Username != "u" || co.Password != "p" || co.DB != 4 || co.PoolSize != 3 ||
		co.TLSConfig == nil || co.TLSConfig.ServerName != "redis.example" {
		t.Fatalf("%#v", opt)
	}
	opt, err = redisconn.AsynqConnOpt(redisconn.Options{
		URL: "rediss://:p@ignored:1/2", SentinelAddrs: []string{"s1:26379", "s2:26379"}, SentinelMaster: "mymaster", SentinelPassword: "sp",
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	fo, ok := opt.(asynq.RedisFailoverClientOpt)
	if !ok || fo.MasterName != "mymaster" || len(fo.SentinelAddrs) != 2 || fo.SentinelPassword != "sp" || fo.Password != "p" || fo.DB != 2 ||
		fo.TLSConfig == nil || fo.TLSConfig.ServerName != "" {
		t.Fatalf("%#v", opt)
	}
	if _, err := redisconn.AsynqConnOpt(redisconn.Options{SentinelAddrs: []string{"s:1"}}, 0); err == nil {
		t.Fatal("Sentinel without a master name accepted")
	}
	if _, err := redisconn.AsynqConnOpt(redisconn.Options{}, 0); err == nil {
		t.Fatal("no address accepted")
	}
}
