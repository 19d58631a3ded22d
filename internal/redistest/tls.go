package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Require skips t when the program name (redis-server, redis-sentinel) is
// not on PATH, except when CI=true: CI must run every Redis test, so there
// the test fails instead.
func Require(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("redistest: %s not found on PATH and CI=true: install it (apt-get install -y %s)", name, name)
	}
	t.Skipf("redistest: %s not found on PATH (apt-get install -y %s)", name, name)
}

// CA is a throwaway certificate authority and a server certificate it
// signed for 127.0.0.1, ::1 and localhost, as PEM files.
type CA struct {
	CAFile, CertFile, KeyFile string
	// Pool trusts the CA (and nothing else).
	Pool *x509.CertPool
}

// ClientTLS is a client configuration that trusts only the CA.
func (c *CA) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}
}

// NewCA makes a CA and a server certificate valid for a day, in dir.
func NewCA(dir string) (*CA, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &CA{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"), Pool: x509.NewCertPool()}
	c.Pool.AddCert(caCert)
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{c.CAFile, "CERTIFICATE", caDER}, {c.CertFile, "CERTIFICATE", der}, {c.KeyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// TLSServer is a redis-server answering TLS on TLSAddr (and plain TCP on
// Server.Addr, for the test's own administration).
type TLSServer struct {
	*Server
	TLSAddr string
	CA      *CA
}

// URL is a rediss:// URL for database db, addressed as host (127.0.0.1 or
// localhost: both are in the certificate).
func (s *TLSServer) URL(host string, db int) string {
	_, port, _ := net.SplitHostPort(s.TLSAddr)
	return fmt.Sprintf("rediss://%s/%d", net.JoinHostPort(host, port), db)
}

// StartTLS runs redis-server with TLS on a second free port, its
// certificate signed by a new CA; clients need not present certificates.
func StartTLS(dir string, extraArgs ...string) (*TLSServer, error) {
	ca, err := NewCA(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--tls-port", strconv.Itoa(port), "--tls-cert-file", ca.CertFile, "--tls-key-file", ca.KeyFile,
		"--tls-ca-cert-file", ca.CAFile, "--tls-auth-clients", "no",
	}, extraArgs...)
	srv, err := Start(dir, args...)
	if err != nil {
		return nil, err
	}
	return &TLSServer{Server: srv, TLSAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), CA: ca}, nil
}

// NewTLSServer starts a TLS redis-server for t (skipped without
// redis-server unless CI=true) and stops it when t ends.
func NewTLSServer(t testing.TB, extraArgs ...string) *TLSServer {
	t.Helper()
	Require(t, "redis-server")
	s, err := StartTLS(t.TempDir(), extraArgs...)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
