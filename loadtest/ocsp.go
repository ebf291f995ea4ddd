package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/serial"
)

// query is one OCSP question, ready to send by GET or POST.
type query struct {
	sn     *big.Int
	der    []byte
	get    string // the GET URL (RFC 6960 appendix A.1)
	post   string // the POST URL with a fragment naming the serial: the fragment is not sent, but comes back in the result
	expect int    // the status the ledger gives; unused for storm certificates
	storm  *stormCert
}

func newQuery(base string, sn *big.Int, issuer *x509.Certificate) (*query, error) {
	der, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: sn}, issuer, nil)
	if err != nil {
		return nil, err
	}
	base = strings.TrimSuffix(base, "/")
	return &query{sn: sn, der: der, get: base + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(der)),
		post: base + "#" + serial.Hex(sn)}, nil
}

// ocspKind is an endpoint fleet: Zipf over sampled certificates whose
// status it learnt from the ledger first, never-issued serials (unknown),
// and, beside a revocation storm, the storm's certificates.
type ocspKind struct {
	s      Scenario
	issuer *x509.Certificate
	sample []*query
	never  []*query
	byURL  map[string]*query
	storm  *storm
	post   http.Header

	mu    sync.Mutex // guards rng and zipf
	rng   *mrand.Rand
	zipf  *mrand.Zipf
	gets  int
	posts int

	stormAsked, stormWrong int // set by the storm's judge
}

func newOCSP(e *env, s Scenario, st *storm) (*ocspKind, error) {
	issuer, err := e.issuer()
	if err != nil {
		return nil, err
	}
	k := &ocspKind{s: s, issuer: issuer, byURL: map[string]*query{}, storm: st,
		post: http.Header{"Content-Type": {"application/ocsp-request"}}}
	files, _ := filepath.Glob(filepath.Join(e.f.Target.CertsDir, "*.pem"))
	var certs []*x509.Certificate
	for _, file := range files {
		if len(certs) >= s.Sample {
			break
		}
		c, err := profile.ReadCertificate(file)
		if err != nil || c.IsCA {
			continue
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificates to ask about in " + e.f.Target.CertsDir)
	}
	status, err := e.statuses(certs)
	if err != nil {
		return nil, err
	}
	for i, c := range certs {
		q, err := newQuery(e.f.Target.OCSP, c.SerialNumber, issuer)
		if err != nil {
			return nil, err
		}
		q.expect = status[i]
		k.add(q)
		k.sample = append(k.sample, q)
	}
	for range max(1, len(k.sample)/4) {
		b := make([]byte, 16)
		rand.Read(b)
		b[0] = b[0]&0x7f | 0x40
		q, _ := newQuery(e.f.Target.OCSP, new(big.Int).SetBytes(b), issuer)
		q.expect = ocsp.Unknown
		k.add(q)
		k.never = append(k.never, q)
	}
	if st != nil {
		for _, c := range st.certs {
			k.add(c.q)
		}
	}
	k.rng = mrand.New(mrand.NewPCG(7, 9))
	k.zipf = mrand.NewZipf(k.rng, 1.1, 1, uint64(len(k.sample)-1))
	return k, nil
}

func (k *ocspKind) add(q *query) { k.byURL[q.get], k.byURL[q.post] = q, q }

func (k *ocspKind) workers() uint64 { return 256 }

func (k *ocspKind) targeter() vegeta.Targeter {
	return func(t *vegeta.Target) error {
		k.mu.Lock()
		var q *query
		switch x := k.rng.Float64(); {
		case x < k.s.NeverIssue:
			q = k.never[k.rng.IntN(len(k.never))]
		case x < k.s.NeverIssue+k.s.StormShare:
			q = k.storm.pick(k.rng).q
		default:
			q = k.sample[k.zipf.Uint64()]
		}
		post := k.rng.Float64() < k.s.PostShare
		if post {
			k.posts++
		} else {
			k.gets++
		}
		k.mu.Unlock()
		if post {
			t.Method, t.URL, t.Body, t.Header = "POST", q.post, q.der, k.post
		} else {
			t.Method, t.URL = "GET", q.get
		}
		return nil
	}
}

// check verifies the answer's signature and serial, then its status:
// the ledger's for sampled certificates, unknown for never-issued ones.
// Answers about storm certificates are judged when the group is over,
// against the whole timeline of their revocation.
func (k *ocspKind) check(r *vegeta.Result) bool {
	q := k.byURL[r.URL]
	if q == nil || r.Headers.Get("Content-Type") != "application/ocsp-response" {
		return false
	}
	resp, err := ocsp.ParseResponse(r.Body, k.issuer)
	if err != nil || resp.SerialNumber.Cmp(q.sn) != 0 {
		return false
	}
	if q.storm != nil {
		k.storm.observe(observation{c: q.storm, from: k, sent: r.Timestamp, recv: r.Timestamp.Add(r.Latency), status: resp.Status})
		return true
	}
	return resp.Status == q.expect
}

func (k *ocspKind) finish(r *Report) {
	r.CheckFailed += k.stormWrong
	r.note("%d GET, %d POST; %d certificates sampled (Zipf), %d never-issued serials asked %.0f%% of the time",
		k.gets, k.posts, len(k.sample), len(k.never), 100*k.s.NeverIssue)
	if k.storm != nil {
		r.note("%d answers about the storm's certificates, %d wrong", k.stormAsked, k.stormWrong)
	}
}

// statuses asks the signer's API what the ledger says of each
// certificate, 8 at a time, remembering the answers for the run.
func (e *env) statuses(certs []*x509.Certificate) ([]int, error) {
	token, err := e.token()
	if err != nil {
		return nil, err
	}
	out := make([]int, len(certs))
	errs := make([]error, len(certs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, c := range certs {
		h := serial.Hex(c.SerialNumber)
		e.mu.Lock()
		st, ok := e.mu.status[h]
		e.mu.Unlock()
		if ok {
			out[i] = st
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = ledgerStatus(e.hc, e.f.Target.Signer, token, h)
			if errs[i] == nil {
				e.mu.Lock()
				if e.mu.status == nil {
					e.mu.status = map[string]int{}
				}
				e.mu.status[h] = out[i]
				e.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// ledgerStatus asks the signer's API what the ledger says of a serial.
func ledgerStatus(hc *http.Client, signer, token, sn string) (int, error) {
	req, _ := http.NewRequest("GET", strings.TrimSuffix(signer, "/")+"/v1/certificates/"+sn, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var c struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&c); err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("lookup %s: %d %v", sn, resp.StatusCode, err)
	}
	if c.Status == "revoked" {
		return ocsp.Revoked, nil
	}
	return ocsp.Good, nil
}
