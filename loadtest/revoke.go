package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/serial"
)

// pollEvery is how often a revoked certificate's OCSP status is asked
// until it reads revoked: the measured delay is at most this much late,
// and each pending revocation adds 1/pollEvery requests per second.
const pollEvery = 10 * time.Millisecond

// stormCert is one certificate issued for the storm, and the timeline of
// its revocation.
type stormCert struct {
	q   *query
	hex string

	mu struct {
		sync.Mutex
		sent    time.Time // the revocation left no earlier than this
		acked   time.Time // the API answered that it is revoked
		visible time.Duration
		seen    bool      // the poller saw it revoked within its deadline
		first   time.Time // the earliest answer that said revoked came back then
	}
}

// sawRevoked records an answer that said revoked and came back at t.
func (c *stormCert) sawRevoked(t time.Time) {
	c.mu.Lock()
	if c.mu.first.IsZero() || t.Before(c.mu.first) {
		c.mu.first = t
	}
	c.mu.Unlock()
}

// observation is an answer the concurrent fleet got about a storm certificate.
type observation struct {
	c          *stormCert
	from       *ocspKind
	sent, recv time.Time
	status     int
}

// storm revokes, at the scenario's rate, certificates it had issued for
// itself before the clock started (so the demo's certificates keep their
// status and a second run passes too). After each revocation it asks OCSP
// until the answer reads revoked, and when the group is over it judges
// every answer the OCSP scenarios beside it got about its certificates.
type storm struct {
	s       Scenario
	certs   []*stormCert
	byURL   map[string]*stormCert
	next    atomic.Int64 // revocations sent
	token   string
	signer  string
	body    []byte
	issuer  *x509.Certificate
	hc      *http.Client
	pollers sync.WaitGroup

	mu  sync.Mutex
	obs []observation
}

func newStorm(e *env, tag string, s Scenario) (*storm, error) {
	token, err := e.token()
	if err != nil {
		return nil, err
	}
	issuer, err := e.issuer()
	if err != nil {
		return nil, err
	}
	st := &storm{s: s, byURL: map[string]*stormCert{}, token: token, signer: strings.TrimSuffix(e.f.Target.Signer, "/"), issuer: issuer,
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	st.body, _ = json.Marshal(map[string]string{"reason": s.Reason})
	n := s.hits()
	devs, err := makeDevices(fmt.Sprintf("lt-%s-%s", e.runID, tag), n)
	if err != nil {
		return nil, err
	}
	cl := &client.Client{URL: st.signer, Token: token, HTTP: &http.Client{Timeout: time.Minute}, Retries: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for lo := 0; lo < n; lo += 1000 {
		b := devs[lo:min(lo+1000, n)]
		csrs := make([]client.CSR, len(b))
		for i, d := range b {
			csrs[i] = client.CSR{Name: d.id, PEM: d.csr, Metadata: map[string]string{"device_id": d.id}}
		}
		md := map[string]string{"product_line": "loadtest-storm", "lot": e.runID, "plant": "loopback"}
		r, err := cl.SubmitBatch(ctx, e.f.Target.Issuer, e.f.Target.Profile, client.IdempotencyKey(e.f.Target.Issuer, e.f.Target.Profile, csrs, md), md, csrs)
		if err != nil {
			return nil, fmt.Errorf("issuing the storm's certificates: %w", err)
		}
		for i, res := range r.Results {
			blk, _ := pem.Decode([]byte(res.Certificate))
			if res.Problem != nil || blk == nil || i >= len(b) {
				return nil, fmt.Errorf("issuing the storm's certificates: csrs[%d] got no certificate", lo+i)
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("issuing the storm's certificates: csrs[%d]: %w", lo+i, err)
			}
			q, err := newQuery(e.f.Target.OCSP, c.SerialNumber, issuer)
			if err != nil {
				return nil, err
			}
			sc := &stormCert{q: q, hex: serial.Hex(c.SerialNumber)}
			q.storm = sc
			st.certs = append(st.certs, sc)
			st.byURL[st.revokeURL(sc)] = sc
		}
	}
	// The responder learns of an issuance from the ledger, a moment after
	// the signer answers; until then it rightly says unknown. Wait until
	// it says good for each, so that the fleet's checks start from there.
	if err := st.waitGood(10 * time.Second); err != nil {
		return nil, err
	}
	return st, nil
}

func (st *storm) revokeURL(c *stormCert) string {
	return st.signer + "/v1/certificates/" + c.hex + "/revoke"
}

// ask sends one OCSP GET about c and returns the verified status.
func (st *storm) ask(c *stormCert) (int, error) {
	resp, err := st.hc.Get(c.q.get)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, err
	}
	r, err := ocsp.ParseResponse(b, st.issuer)
	if err != nil {
		return 0, err
	}
	if r.SerialNumber.Cmp(c.q.sn) != 0 {
		return 0, errors.New("the answer is about another serial")
	}
	return r.Status, nil
}

// waitGood asks about every certificate, 8 at a time, until OCSP says
// good for each, for at most within plus 2ms per certificate.
func (st *storm) waitGood(within time.Duration) error {
	deadline := time.Now().Add(within + time.Duration(len(st.certs))*2*time.Millisecond)
	var next atomic.Int64
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(st.certs); i = int(next.Add(1)) - 1 {
				c := st.certs[i]
				for {
					s, err := st.ask(c)
					if err == nil && s == ocsp.Good {
						break
					}
					if time.Now().After(deadline) {
						errs[w] = fmt.Errorf("OCSP did not say good for the new certificate %s in time (status %d, %v)", c.hex, s, err)
						return
					}
					time.Sleep(pollEvery)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pick chooses a storm certificate for the fleet to ask about: half the
// time one of the last four sent for revocation, where the status turns,
// else any (most not yet revoked, which must read good).
func (st *storm) pick(rng *mrand.Rand) *stormCert {
	n := min(int(st.next.Load()), len(st.certs))
	if n > 0 && rng.IntN(2) == 0 {
		return st.certs[n-1-rng.IntN(min(n, 4))]
	}
	return st.certs[rng.IntN(len(st.certs))]
}

func (st *storm) observe(o observation) {
	st.mu.Lock()
	st.obs = append(st.obs, o)
	st.mu.Unlock()
}

func (st *storm) workers() uint64 { return 64 }

func (st *storm) targeter() vegeta.Targeter {
	hdr := http.Header{"Authorization": {"Bearer " + st.token}, "Content-Type": {"application/json"}}
	return func(t *vegeta.Target) error {
		i := int(st.next.Add(1)) - 1
		if i >= len(st.certs) {
			return errExhausted
		}
		c := st.certs[i]
		c.mu.Lock()
		c.mu.sent = time.Now()
		c.mu.Unlock()
		t.Method, t.URL, t.Body, t.Header = "POST", st.revokeURL(c), st.body, hdr
		return nil
	}
}

// check: the API says the certificate is revoked; then a poller asks
// OCSP until it says so too.
func (st *storm) check(r *vegeta.Result) bool {
	c := st.byURL[r.URL]
	if c == nil {
		return false
	}
	var a struct {
		Serial string `json:"serial"`
		Status string `json:"status"`
	}
	ok := json.Unmarshal(r.Body, &a) == nil && a.Status == "revoked" && strings.EqualFold(a.Serial, c.hex)
	acked := r.Timestamp.Add(r.Latency)
	if ok {
		c.mu.Lock()
		c.mu.acked = acked
		c.mu.Unlock()
		st.pollers.Add(1)
		go st.poll(c, acked)
	}
	return ok
}

// poll asks OCSP about c until it says revoked, for at most twice the
// bound (at least 2s).
func (st *storm) poll(c *stormCert, acked time.Time) {
	defer st.pollers.Done()
	deadline := acked.Add(max(2*st.s.Thresholds.RevokedWithin, 2*time.Second))
	for {
		s, err := st.ask(c)
		now := time.Now()
		if err == nil && s == ocsp.Revoked {
			c.sawRevoked(now)
			c.mu.Lock()
			c.mu.seen, c.mu.visible = true, now.Sub(acked)
			c.mu.Unlock()
			return
		}
		if now.After(deadline) {
			return
		}
		time.Sleep(pollEvery)
	}
}

// finish waits for the pollers, then judges what the fleet saw:
//   - an answer that came back before the revocation left must say good;
//   - an answer to a request sent after any answer said revoked must say
//     revoked (DESIGN.md invariant 3: a revocation never goes back to good);
//   - an answer to a request sent later than revoked_within after the
//     API's answer must say revoked (invariant 5);
//   - in between, good or revoked; unknown never (the certificate was issued).
func (st *storm) finish(r *Report) {
	st.pollers.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	bound := st.s.Thresholds.RevokedWithin
	for _, o := range st.obs {
		if o.status == ocsp.Revoked {
			o.c.mu.Lock()
			late := o.c.mu.sent.IsZero() || o.recv.Before(o.c.mu.sent)
			o.c.mu.Unlock()
			if !late {
				o.c.sawRevoked(o.recv)
			}
		}
	}
	var goodAfter, goodLate, wrong int
	for _, o := range st.obs {
		o.from.stormAsked++
		c := o.c
		c.mu.Lock()
		bad := false
		switch {
		case o.status != ocsp.Good && o.status != ocsp.Revoked:
			bad = true
		case c.mu.sent.IsZero() || o.recv.Before(c.mu.sent):
			bad = o.status != ocsp.Good
		case o.status == ocsp.Good && !c.mu.first.IsZero() && o.sent.After(c.mu.first):
			bad = true
			goodAfter++
		case o.status == ocsp.Good && !c.mu.acked.IsZero() && o.sent.After(c.mu.acked.Add(bound)):
			bad = true
			goodLate++
		}
		c.mu.Unlock()
		if bad {
			wrong++
			o.from.stormWrong++
		}
	}
	var lat []time.Duration
	notSeen := 0
	for _, c := range st.certs {
		c.mu.Lock()
		switch {
		case c.mu.seen:
			lat = append(lat, c.mu.visible)
			r.extra = append(r.extra, sample{at: c.mu.acked.Sub(r.start), lat: c.mu.visible})
		case !c.mu.acked.IsZero():
			notSeen++
		}
		c.mu.Unlock()
	}
	r.extraFor = "OCSP revoked after the API's answer"
	slices.Sort(lat)
	sent := min(int(st.next.Load()), len(st.certs))
	r.note("%d certificates issued for the storm before the clock started, %d revocations sent (%s)", len(st.certs), sent, st.s.Reason)
	if len(lat) > 0 {
		r.note("OCSP said revoked after the API's answer: p50 %s, p99 %s, max %s (polled every %s; bound %s)",
			round(lat[len(lat)/2]), round(lat[len(lat)*99/100]), round(lat[len(lat)-1]), pollEvery, bound)
	}
	r.note("the OCSP fleet beside it: %d answers about these certificates, %d good after one said revoked, %d good later than %s after the revocation, %d wrong in all",
		len(st.obs), goodAfter, goodLate, bound, wrong)
	if notSeen > 0 {
		r.fail("%d revocations never read revoked over OCSP", notSeen)
	}
	if len(lat) > 0 && lat[len(lat)-1] > bound {
		r.fail("revoked within %s > %s", round(lat[len(lat)-1]), bound)
	}
	if goodAfter+goodLate > 0 {
		r.fail("%d OCSP answers said good for a revoked certificate", goodAfter+goodLate)
	}
}
