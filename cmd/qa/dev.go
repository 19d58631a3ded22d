package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/qaqueue/qaqueue/config"
	"github.com/qaqueue/qaqueue/lmclient"
	"github.com/qaqueue/qaqueue/lmclient/fakelm"
)

// runDev is `qa dev` (and `make run`): the whole system in one process, with
// no setup. Redis is embedded unless REDIS_URL is set; the LM is the demo LM
// unless a key or base URL is configured.
func runDev(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa dev", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	demoTTFT := fs.Duration("demo-ttft", 300*time.Millisecond, "demo LM: time to first token")
	demoTPS := fs.Float64("demo-tps", 60, "demo LM: tokens per second")
	serverUsage(fs, e.stderr, "qa dev [flags]", "Runs everything in one process (`make run`): the API, a worker, an embedded\nRedis unless REDIS_URL is set, and the demo LM (made-up answers) unless an\nLM key or base URL is set.", devHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, notices, err := loadConfig(e)
	if err != nil {
		return errConfig(err)
	}
	if cfg.Log.Format == "json" && e.getenv("LOG_FORMAT") == "" {
		cfg.Log.Format = "console" // a person is watching
	}
	if setting(cfg, "HOST").Source == config.SourceDefault {
		// qa dev is for this machine, usually without API keys: HOST opens it up.
		cfg.HTTP.Host = devHost
	}
	log := newLogger(cfg, e.stderr)
	logNotices(log, notices)
	tracing, err := startTracing(ctx, cfg, "dev", log)
	if err != nil {
		return err
	}
	defer stopTracing(tracing, log)

	url := cfg.Redis.EffectiveURL().Reveal()
	if cfg.Redis.Embedded() {
		mr := miniredis.NewMiniRedis()
		// By default miniredis's TTLs never run down; ours must.
		mr.ClockTTL(true)
		if err := mr.Start(); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		url = "redis://" + mr.Addr() + "/0"
		log.Warn().Str("addr", mr.Addr()).Msg("using an embedded, in-memory Redis (set REDIS_URL to use a real one); everything is lost on exit")
	}
	rdb, err := openRedis(ctx, cfg, url, devPoolSize(cfg))
	if err != nil {
		return err
	}
	defer rdb.Close()

	var demo *lmEndpoint
	lookup := lookupEnv(e)
	if _, why := lmclient.ResolveProvider(cfg.LM.Model, cfg.LM.APIBase, cfg.LM.APIKey.Reveal(), cfg.LM.AzureAPIVersion, lookup); why != nil {
		lm, err := fakelm.New(fakelm.Config{TTFT: *demoTTFT, TokensPerSecond: *demoTPS})
		if err != nil {
			return fmt.Errorf("start demo LM: %w", err)
		}
		defer lm.Close()
		demo = &lmEndpoint{base: lm.URL(), key: "demo"}
		demoProviderPolls(cfg, lookup)
		log.Warn().Str("reason", why.Error()).Str("demo_lm", lm.URL()).
			Msg("no LM configured: answering with the DEMO LM (made-up answers); set OPENAI_API_KEY or LM_API_KEY/LM_API_BASE for a real one")
	}

	reg := newRegistry()
	stack, err := startWorkerStack(ctx, cfg, lookup, rdb, log.With().Str("component", "worker").Logger(), reg, demo, tracing.Provider())
	if err != nil {
		return err
	}
	api, err := startAPI(ctx, cfg, rdb, url, log, reg, demo != nil, tracing.Provider())
	if err != nil {
		stack.stop()
		return err
	}
	if err := pushProgramsDir(ctx, api.programs, cfg.LM.ProgramsDir, log); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Queue.ShutdownTimeout)
		defer cancel()
		api.stop(sctx)
		stack.stop()
		return err
	}
	printWelcome(e, cfg, api.addr, demo != nil)

	<-ctx.Done()
	log.Info().Msg("shutting down: API first, then workers, then Redis")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Queue.ShutdownTimeout)
	defer cancel()
	api.stop(sctx)
	stack.stop()
	return nil
}

func printWelcome(e env, cfg *config.Config, addr string, demo bool) {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	base := "http://" + net.JoinHostPort(host, port)
	lm := cfg.LM.Model
	if demo {
		lm = "the demo LM (made-up answers)"
	}
	fmt.Fprintf(e.stdout, `
qaqueue is running (LM: %s)

  playground   %s/
  API docs     %s/docs
  API          %s
  dashboard    %s/monitoring/
  health       %s/health
  metrics      %s/metrics

Try:
  curl -s %s/predict -H 'Content-Type: application/json'%s -d '{"question":"Why is the sky blue?"}'
%s
Press Ctrl-C to stop.
`, lm, base, base, base, base, base, base, base, authHint(cfg), openWarning(cfg))
}

// authHint is the curl flag a configured key needs.
func authHint(cfg *config.Config) string {
	if len(cfg.Security.APIKeys) == 0 {
		return ""
	}
	return " -H 'Authorization: Bearer <key>'"
}

// devHost is where qa dev listens unless HOST is set: it runs without API
// keys, which is fine for this machine and never for a network. `qa api`
// keeps HOST's 0.0.0.0, which containers need (and refuses to run open).
const devHost = "127.0.0.1"

// openWarning says who can reach qa dev when it runs without API keys: this
// machine only on a loopback HOST, else anyone, loudly (`qa api` refuses to
// run open without ALLOW_ANONYMOUS).
func openWarning(cfg *config.Config) string {
	if len(cfg.Security.APIKeys) > 0 {
		return ""
	}
	if isLoopbackHost(cfg.HTTP.Host) {
		return "\n  Only this machine can reach it (HOST=" + cfg.HTTP.Host + "); set HOST=0.0.0.0 and API_KEYS to share it.\n"
	}
	what := "the API, the dashboard and /metrics are"
	if len(cfg.Security.AdminAPIKeys) > 0 {
		what = "the API is"
	}
	return "\n  WARNING: no API_KEYS: " + what + " open to anyone who can reach this port.\n" +
		"  Set API_KEYS (and ADMIN_API_KEYS) before exposing it.\n"
}

// devPoolSize is the Redis pool of `qa dev`, whose one process is both the
// API and a worker.
func devPoolSize(cfg *config.Config) int {
	if cfg.Redis.PoolSize > 0 {
		return cfg.Redis.PoolSize
	}
	return cfg.Redis.APIPoolSize() + cfg.Redis.WorkerPoolSize(cfg.Queue)
}

// isLoopbackHost reports a HOST that only this machine can reach.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setting is one variable's value and source, as qa config prints them.
func setting(cfg *config.Config, name string) config.Setting {
	for _, s := range cfg.Settings() {
		if s.Name == name {
			return s
		}
	}
	return config.Setting{Name: name}
}

// demoProviderPolls makes provider-mode batches look at the demo LM's batch
// API every second, unless the environment says otherwise: its batches end
// at once, and a first look after PROVIDER_POLL_INTERVAL's 30 s would make
// the demo of a half-price batch a wait.
func demoProviderPolls(cfg *config.Config, lookup config.Lookup) {
	if _, set := lookup("PROVIDER_POLL_INTERVAL"); !set {
		cfg.Batch.ProviderPollInterval = time.Second
	}
	if _, set := lookup("PROVIDER_POLL_MAX"); !set {
		cfg.Batch.ProviderPollMax = max(2*time.Second, cfg.Batch.ProviderPollInterval)
	}
}
