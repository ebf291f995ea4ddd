package signer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"testing"
)

func seedCSR(f *testing.F) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "MTR-1"}}, k)
	if err != nil {
		f.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// FuzzDecodeBatch: the batch body comes from the network. decodeBatch
// never panics, and what it accepts respects the bounds and re-encodes.
func FuzzDecodeBatch(f *testing.F) {
	b, _ := json.Marshal(batchRequest{Metadata: map[string]string{"lot": "1"}, CSRs: []csrInput{{CSR: seedCSR(f), Metadata: map[string]string{"device_id": "x"}}}})
	f.Add(b)
	f.Add([]byte(`{"csrs":[]}`))
	f.Add([]byte(`{"csrs":[{"csr":"x"}],"extra":1}`))
	f.Add([]byte(`{"csrs":[{"csr":"x"}]} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, p := decodeBatch(body, 100)
		if p != nil {
			if p.Status < 400 || p.Detail == "" {
				t.Fatalf("problem without status or detail: %+v", p)
			}
			return
		}
		if len(req.CSRs) == 0 || len(req.CSRs) > 100 {
			t.Fatalf("accepted %d CSRs", len(req.CSRs))
		}
		if _, err := json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseCSR: each CSR string is attacker-controlled. parseCSR never
// panics, and a CSR it accepts has a signature that verifies.
func FuzzParseCSR(f *testing.F) {
	good := seedCSR(f)
	f.Add(good)
	blk, _ := pem.Decode([]byte(good))
	f.Add(string(blk.Bytes))
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----")
	f.Add("MIIB")
	f.Fuzz(func(t *testing.T, s string) {
		csr, p := parseCSR(s)
		if p != nil {
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature fails: %v", err)
		}
	})
}
