package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/e2e"

	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

// makeCerts writes a CA and a server certificate for 127.0.0.1 and
// localhost, signed by it, into dir.
func makeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// startTLS starts a redis-server that also listens with TLS, and wants a
// password; it returns the server and its TLS port.
func startTLS(t *testing.T, ca, cert, key string) (*redisserver.Server, string) {
	t.Helper()
	port, err := redisserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := redistest.Start(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", ca, "--tls-auth-clients", "no", "--requirepass", "tls-secret")
	return s, strconv.Itoa(port)
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := makeCerts(t, dir)
	src, srcPort := startTLS(t, ca, cert, key)
	dst, dstPort := startTLS(t, ca, cert, key)
	c := redistest.Client(t, src, 0)
	c.Do(t.Context(), "AUTH", "tls-secret")
	if err := c.Set(t.Context(), "over-tls", "value", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("tls-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := " --password-file pw"
	tests := []struct {
		name, script string
		code         int
		output       string
	}{
		{"untrusted certificate", "crsdump --tls -h 127.0.0.1 -p " + srcPort + auth + " -o a.zst", 5, "certificate"},
		{"rediss without the CA", "crsdump -u rediss://127.0.0.1:" + srcPort + auth + " -o a.zst", 5, "certificate"},
		{"wrong server name", "crsdump --tls -p " + srcPort + " --cacert ca.pem --sni other.example" + auth + " -o a.zst", 5, "certificate"},
		{"trusted CA", "crsdump --tls -p " + srcPort + " --cacert ca.pem" + auth + " -o b.zst", 0, "dumped 1 keys"},
		{"rediss with the CA", "crsdump -u rediss://127.0.0.1:" + srcPort + " --cacert ca.pem" + auth + " -o c.zst", 0, "dumped 1 keys"},
		{"insecure, said explicitly", "crsdump --tls -p " + srcPort + " --insecure" + auth + " -o d.zst", 0, "dumped 1 keys"},
		{"load over TLS", "crsload --tls -p " + dstPort + " --cacert ca.pem" + auth + " b.zst", 0, "loaded 1 keys"},
		{"wrong password", "crsdump --tls -p " + srcPort + " --cacert ca.pem -a nope -o e.zst", 5, "authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := e2e.Sh(t, dir, tt.script)
			t.Logf("%s", out)
			if code != tt.code || !strings.Contains(out, tt.output) {
				t.Errorf("exit %d (want %d), output:\n%s", code, tt.code, out)
			}
			if strings.Contains(out, "tls-secret") {
				t.Errorf("password printed:\n%s", out)
			}
		})
	}
	d := redistest.Client(t, dst, 0)
	d.Do(t.Context(), "AUTH", "tls-secret")
	if v, _ := d.Get(t.Context(), "over-tls").Result(); v != "value" {
		t.Errorf("target holds %q", v)
	}
	for _, f := range []string{"b.zst", "c.zst"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if len(b) == 0 {
			t.Errorf("%s is empty", f)
		}
	}
}
