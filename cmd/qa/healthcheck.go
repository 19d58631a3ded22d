package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// runHealthcheck is `qa healthcheck`: GET a local probe and exit 0 on a 2xx,
// 1 otherwise. It is the containers' HEALTHCHECK, so the images need no curl
// (and no shell).
func runHealthcheck(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("qa healthcheck", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	url := fs.String("url", "", "the URL to GET (default: the API's, or with --worker the worker's, probe on 127.0.0.1)")
	isWorker := fs.Bool("worker", false, "probe a worker on WORKER_METRICS_PORT instead of the API on PORT")
	path := fs.String("path", "/readyz", "the probe to GET when --url is not given: /readyz (Redis answers) or /livez")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: qa healthcheck [flags]\n\nGETs a local probe and exits 0 on a 2xx answer, 1 otherwise (the\ncontainers' HEALTHCHECK). PORT, WORKER_METRICS_PORT and HOST come from\nthe environment and .env, as for `qa api` and `qa worker`.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	target := *url
	if target == "" {
		var err error
		if target, err = probeURL(e, *isWorker, *path); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("bad --url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", target, strings.TrimSpace(string(body)))
	return nil
}

// probeURL is the local probe of this container's process, from the same
// configuration the process read.
func probeURL(e env, isWorker bool, path string) (string, error) {
	cfg, _, err := loadConfig(e)
	if err != nil {
		return "", errConfig(err)
	}
	port := cfg.HTTP.Port
	if isWorker {
		port = cfg.Queue.WorkerMetricsPort
	}
	if port == 0 {
		return "", errors.New("the port is 0 (picked at start): pass --url")
	}
	host := cfg.HTTP.Host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + path, nil
}
