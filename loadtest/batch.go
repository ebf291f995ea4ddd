package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/certmill/certmill/pkg/serial"
)

// device is one key pair's CSR, as a manufacturer's key-generation server
// makes it (pkg/devenv's keygen): P-256, the device id as common name and
// a urn:dev URI. Only the CSR and its public key are kept.
type device struct {
	id   string
	csr  string // PEM
	spki []byte // the CSR's SubjectPublicKeyInfo, DER
}

// makeDevices makes n device CSRs named prefix-00001..., on every core.
func makeDevices(prefix string, n int) ([]device, error) {
	out := make([]device, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				id := fmt.Sprintf("%s-%05d", prefix, i+1)
				k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err == nil {
					var der []byte
					der, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id},
						URIs: []*url.URL{{Scheme: "urn", Opaque: "dev:ops:acme-" + id}}}, k)
					if err == nil {
						var csr *x509.CertificateRequest
						csr, err = x509.ParseCertificateRequest(der)
						if err == nil {
							out[i] = device{id: id, csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), spki: csr.RawSubjectPublicKeyInfo}
						}
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

// batchBody is the signer's batch request (signer/http.go, DESIGN.md's API sketch).
func batchBody(lot string, devs []device) []byte {
	type entry struct {
		CSR      string            `json:"csr"`
		Metadata map[string]string `json:"metadata"`
	}
	es := make([]entry, len(devs))
	for i, d := range devs {
		es[i] = entry{CSR: d.csr, Metadata: map[string]string{"device_id": d.id}}
	}
	b, _ := json.Marshal(map[string]any{"metadata": map[string]string{"product_line": "loadtest", "lot": lot, "plant": "loopback"}, "csrs": es})
	return b
}

// batchAnswer is the part of the signer's answer the checks read.
type batchAnswer struct {
	BatchID  string `json:"batch_id"`
	Issued   int    `json:"issued"`
	Failed   int    `json:"failed"`
	Replayed bool   `json:"replayed"`
	Results  []struct {
		Index       int    `json:"index"`
		Serial      string `json:"serial"`
		Certificate string `json:"certificate"`
		Problem     *struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
		} `json:"problem"`
	} `json:"results"`
}

// checkBatch says what is wrong with an answer to a batch of devs, or
// "" when every CSR got a certificate that parses, with the serial the
// answer names, the CSR's public key and the device id as common name.
func checkBatch(body []byte, devs []device) (issued int, wrong string) {
	var a batchAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return 0, "the answer is not a batch answer: " + err.Error()
	}
	if a.Replayed {
		return 0, "a new batch was answered as a replay"
	}
	if len(a.Results) != len(devs) {
		return 0, fmt.Sprintf("%d results for %d CSRs", len(a.Results), len(devs))
	}
	for i, r := range a.Results {
		if r.Index != i {
			return issued, fmt.Sprintf("results[%d] has index %d", i, r.Index)
		}
		if r.Problem != nil {
			return issued, fmt.Sprintf("csrs[%d]: %s: %s", i, r.Problem.Type, r.Problem.Detail)
		}
		blk, _ := pem.Decode([]byte(r.Certificate))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return issued, fmt.Sprintf("csrs[%d]: no PEM certificate", i)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return issued, fmt.Sprintf("csrs[%d]: the certificate does not parse: %v", i, err)
		}
		if !strings.EqualFold(serial.Hex(c.SerialNumber), r.Serial) {
			return issued, fmt.Sprintf("csrs[%d]: serial %q in the answer, %s in the certificate", i, r.Serial, serial.Hex(c.SerialNumber))
		}
		if !bytes.Equal(c.RawSubjectPublicKeyInfo, devs[i].spki) {
			return issued, fmt.Sprintf("csrs[%d]: the certificate's public key is not the CSR's", i)
		}
		if c.Subject.CommonName != devs[i].id {
			return issued, fmt.Sprintf("csrs[%d]: common name %q, want %q", i, c.Subject.CommonName, devs[i].id)
		}
		issued++
	}
	if a.Issued != issued || a.Failed != 0 {
		return issued, fmt.Sprintf("the answer counts %d issued and %d failed, the results %d issued", a.Issued, a.Failed, issued)
	}
	return issued, ""
}

// batchKind is a manufacturer's key-generation server posting batches of
// fresh CSRs, each with its own Idempotency-Key.
type batchKind struct {
	url     string
	size    int
	token   string
	batches [][]device
	bodies  [][]byte
	keys    []string
	next    atomic.Int64

	certs      int // certificates that passed every check
	badBatches int
	firstWrong string
}

// newBatch makes every CSR and request body before the clock starts.
func newBatch(e *env, tag string, s Scenario) (*batchKind, error) {
	token, err := e.token()
	if err != nil {
		return nil, err
	}
	nb := s.hits()
	devs, err := makeDevices(fmt.Sprintf("lt-%s-%s", e.runID, tag), nb*s.BatchSize)
	if err != nil {
		return nil, err
	}
	k := &batchKind{url: fmt.Sprintf("%s/v1/issuers/%s/profiles/%s/batches", strings.TrimSuffix(e.f.Target.Signer, "/"), e.f.Target.Issuer, e.f.Target.Profile),
		size: s.BatchSize, token: token}
	for i := range nb {
		b := devs[i*s.BatchSize : (i+1)*s.BatchSize]
		k.batches = append(k.batches, b)
		k.bodies = append(k.bodies, batchBody(e.runID, b))
		k.keys = append(k.keys, fmt.Sprintf("loadtest-%s-%s-%d", e.runID, tag, i))
	}
	return k, nil
}

func (k *batchKind) workers() uint64 { return 64 }

func (k *batchKind) targeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		i := int(k.next.Add(1)) - 1
		if i >= len(k.bodies) {
			return errExhausted
		}
		t.Method, t.URL, t.Body = "POST", k.url+"#"+strconv.Itoa(i), k.bodies[i]
		t.Header = http.Header{"Authorization": {"Bearer " + k.token}, "Content-Type": {"application/json"}, "Idempotency-Key": {k.keys[i]}}
		return nil
	}
}

func (k *batchKind) check(r *vegeta.Result) bool {
	_, frag, _ := strings.Cut(r.URL, "#")
	i, err := strconv.Atoi(frag)
	if err != nil || i < 0 || i >= len(k.batches) {
		return false
	}
	n, wrong := checkBatch(r.Body, k.batches[i])
	k.certs += n
	if wrong != "" {
		k.badBatches++
		if k.firstWrong == "" {
			k.firstWrong = fmt.Sprintf("batch %d: %s", i, wrong)
		}
		return false
	}
	return true
}

func (k *batchKind) finish(r *Report) {
	rate := 0.0
	if r.elapsed > 0 {
		rate = float64(k.certs) / r.elapsed.Seconds()
	}
	r.note("%d certificates checked (parse, serial, public key, common name) in batches of %d: %.0f certificates/s from the first request to the last answer",
		k.certs, k.size, rate)
	if k.firstWrong != "" {
		r.note("%d batches wrong; first: %s", k.badBatches, k.firstWrong)
	}
}
