package responder

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/serial"
)

// BenchmarkOCSPOpenSSL measures the peer: `openssl ocsp` as a responder
// (one process: with -multi its parent spins on a core here) over an index of the same population as
// BenchmarkOCSP (CERTMILL_OCSP_CERTS, 1 % revoked), asked the same way:
// the same Zipf draw, every fifth serial never issued, 64 connections,
// POST. openssl answers one connection at a time, so each request asks for
// the connection to be closed after the answer; it signs every answer.
//
//	CERTMILL_OCSP_CERTS=1000000 go test -run '^$' -bench OCSPOpenSSL -benchtime 20000x ./responder/
func BenchmarkOCSPOpenSSL(b *testing.B) {
	n := benchN()
	dir := b.TempDir()
	// openssl reads its CA and responder from PEM files: an in-memory CA
	// made for the run, and a delegated responder certificate under it.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "openssl peer CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	rKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "openssl peer responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(0, 0, 2), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}, ca, rKey.Public(), caKey)
	rPKCS8, _ := x509.MarshalPKCS8PrivateKey(rKey)
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			b.Fatal(err)
		}
		return f
	}
	caFile, rFile, kFile := write("ca.pem", "CERTIFICATE", caDER), write("rsigner.pem", "CERTIFICATE", rDER), write("rkey.pem", "PRIVATE KEY", rPKCS8)

	// The index: one line per certificate, as `openssl ca` keeps it.
	idx := filepath.Join(dir, "index.txt")
	f, err := os.Create(idx)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	serials := make([]*big.Int, n)
	exp := time.Now().AddDate(1, 0, 0).UTC().Format("060102150405Z")
	rev := time.Now().UTC().Format("060102150405Z")
	for i := range n {
		sn, _ := serial.New()
		serials[i] = sn
		hex := strings.ToUpper(sn.Text(16))
		if i%100 == 0 {
			fmt.Fprintf(w, "R\t%s\t%s,keyCompromise\t%s\tunknown\t/CN=device-%d\n", exp, rev, hex, i)
		} else {
			fmt.Fprintf(w, "V\t%s\t\t%s\tunknown\t/CN=device-%d\n", exp, hex, i)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	reqs := zipfRequests(serials, ca)
	serials = nil

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("openssl", "ocsp", "-index", idx, "-port", fmt.Sprint(port), "-rsigner", rFile, "-rkey", kFile,
		"-CA", caFile, "-ignore_err", "-nmin", "60")
	logf, err := os.Create(filepath.Join(dir, "openssl.log")) // it logs every request
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("openssl ocsp: %v (hint: make setup installs openssl)", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	t0 := time.Now()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Ready when it answers a real request (an empty connection would
	// keep its only server loop waiting).
	var err2 error
	if !checkfor.Within(5*time.Minute, 100*time.Millisecond, func() bool {
		var resp *http.Response
		resp, err2 = (&http.Client{Timeout: 2 * time.Second}).Post("http://"+addr+"/", "application/ocsp-request", bytes.NewReader(reqs[1]))
		if err2 == nil {
			resp.Body.Close()
		}
		return err2 == nil
	}) {
		b.Fatalf("openssl ocsp did not answer within 5 minutes: %v", err2)
	}
	b.Logf("openssl ocsp listening %s after start (index of %d)", time.Since(t0).Round(time.Millisecond), n)
	b.Run(fmt.Sprintf("openssl/certs=%d", n), func(b *testing.B) {
		// openssl answers one connection at a time and its listen backlog
		// overflows under 64 simultaneous connects (SYN retries then stall
		// a request for up to half a minute): 64 clients share 8.
		askOCSP(b, addr, 8, true, func(i int64) []byte { return reqs[i%pool] })
	})
}
