package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// crlServer serves one signed CRL with an ETag on loopback.
func crlServer(t *testing.T) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign, SubjectKeyId: []byte{1}}
	der, _ := x509.CreateCertificate(rand.Reader, ca, ca, k.Public(), k)
	caCert, _ := x509.ParseCertificate(der)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, caCert, k)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		if r.Header.Get("If-None-Match") == `"x"` {
			w.WriteHeader(304)
			return
		}
		w.Write(crl)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/ca.crl"
}

// TestImpossibleThresholdFails: the same load passes a loose threshold and
// fails an impossible one, which is what makes CI go red.
func TestImpossibleThresholdFails(t *testing.T) {
	url := crlServer(t)
	for _, tc := range []struct {
		p99  time.Duration
		pass bool
	}{{time.Second, true}, {time.Nanosecond, false}} {
		f := &File{Target: Target{CRL: url}, Scenarios: []Scenario{{Name: "crl", Kind: "crl",
			Stages: []Stage{{Rate: 100, Duration: time.Second}}, Thresholds: Thresholds{P99: tc.p99}}}}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		reps, err := Run(f)
		if err != nil {
			t.Fatal(err)
		}
		r := reps[0]
		if r.Passed != tc.pass || r.Requests < 90 || r.Errors != 0 || r.CheckFailed != 0 {
			t.Fatalf("p99 threshold %s: %+v", tc.p99, r)
		}
		if !tc.pass && !strings.Contains(r.FailedReason, "p99") {
			t.Fatalf("reason %q", r.FailedReason)
		}
	}
}

// TestLoopbackOnly refuses targets off this machine and unbounded runs.
func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	f := &File{Target: Target{OCSP: "http://10.0.0.1:8081/x"}, Scenarios: []Scenario{{Kind: "ocsp", Stages: []Stage{{Rate: 1, Duration: time.Hour}}}}}
	err := f.Validate()
	if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("Validate: %v", err)
	}
}
