package lmclient

import (
	"net"
	"net/http"
	"time"
)

// NewTransport returns the pooled transport a Client uses by default. One
// process may hold thousands of concurrent calls to one host: idle
// connections are kept per host in proportion (the default of 2 would make
// every burst dial anew), dials and TLS handshakes are bounded, and HTTP/2
// is tried so streams multiplex. Response headers are not bounded here: a
// non-streamed answer arrives only when complete, so Config.Timeout (through
// the context) is the one bound of a call.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
