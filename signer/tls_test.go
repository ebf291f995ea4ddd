package signer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/signer"
)

// TestTLS: the signer serves TLS; the client verifies it with -ca-file;
// plain HTTP to the TLS port gets nothing.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certmill-signer"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	e := newEnv(t, func(c *signer.Config) {
		c.InsecurePlainHTTP = false
		c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile
	})
	c, err := client.New("https://"+e.s.Addr().String(), acmeToken, certFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get(context.Background(), "0102", "application/json")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("lookup over TLS: %v, want a 404 problem", err)
	}
	plain, _ := client.New("http://"+e.s.Addr().String(), acmeToken, "")
	plain.Retries = 0
	if _, err := plain.Get(context.Background(), "0102", "application/json"); err == nil || errors.As(err, &apiErr) && apiErr.Status == 404 {
		t.Fatalf("plain HTTP to the TLS port answered: %v", err)
	}
	if _, err := client.New("https://"+e.s.Addr().String(), acmeToken, ""); err != nil {
		t.Fatal(err)
	}
	untrusted, _ := client.New("https://"+e.s.Addr().String(), acmeToken, "")
	untrusted.Retries = 0
	if _, err := untrusted.Get(context.Background(), "0102", "application/json"); err == nil || errors.As(err, &apiErr) {
		t.Fatalf("a client without the CA trusted the signer: %v", err)
	}
}
