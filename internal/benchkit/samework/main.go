package samework

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Main runs one process of the baseline until ctx is done:
//
//	api    -redis URL -addr HOST:PORT
//	worker -redis URL -addr HOST:PORT -lm BASE -concurrency N
//
// Both serve GET /readyz and GET /metrics (Prometheus, with the Go
// runtime's series) on addr; the api serves its routes there too.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "api" && args[0] != "worker") {
		return errors.New("samework: want api or worker")
	}
	role := args[0]
	fs := flag.NewFlagSet("samework "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", "", "Redis URL")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	lmBase := fs.String("lm", "", "OpenAI-compatible base URL (worker)")
	conc := fs.Int("concurrency", 10, "worker slots (worker)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("samework: parse -redis: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, *conc+10) // one per slot, as a user sizes it
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	gin.SetMode(gin.ReleaseMode)
	var h http.Handler
	if role == "api" {
		h = NewAPI(rdb)
	} else {
		srv, handler := NewWorker(rdb, *lmBase, *conc)
		if err := srv.Start(handler); err != nil {
			return fmt.Errorf("samework: start worker: %w", err)
		}
		defer srv.Shutdown()
		mux := http.NewServeMux()
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {})
		h = mux
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.Handle("/", h)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("samework: listen: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("samework: serve: %w", err)
	}
	return nil
}
