//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/crlgen"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/responder"
)

// streamView is the whole stream as the suite reads it back.
type streamView struct {
	state   *ledger.MemState
	issued  map[string]int // "issuer/serial" -> issuance records
	batches map[string]int // batch id -> issuance records
	records int
	last    uint64
	retries int // consumers made again (a stall, an unanswered request)
}

func (v *streamView) Apply(es []ledger.Entry, last uint64) error {
	for _, e := range es {
		v.records++
		if e.Err == nil && e.Record.Kind == ledger.KindIssued {
			is := e.Record.Issued
			v.issued[is.Issuer+"/"+ledger.SerialHex(is.Serial)]++
			v.batches[is.BatchID]++
		}
	}
	v.last = last
	return v.state.Apply(es, last)
}

// readStream reads every record of the stream. A consumer that fails
// (not made in time, or stalled: ledger.ErrStalled) is made again from
// the last record read, as Follow does in the services; each time is
// logged.
func readStream(t *testing.T, l *ledger.Ledger) *streamView {
	t.Helper()
	v := &streamView{state: ledger.NewMemState(), issued: map[string]int{}, batches: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	caught := false
	// Where it hangs, for the log of a run that cannot be repeated.
	dump := time.AfterFunc(time.Minute, func() {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Logf("chaos: reading the stream back has not caught up in a minute; goroutines:\n%s", b.String())
	})
	defer dump.Stop()
	for {
		err := l.Consume(ctx, v.last, v, ledger.ConsumeOptions{CaughtUp: func(uint64) { caught = true; cancel() }})
		if caught {
			return v
		}
		if ctx.Err() != nil {
			t.Logf("chaos: reading the stream back never caught up (%d records, up to %d)", v.records, v.last)
			return v
		}
		v.retries++
		t.Logf("chaos: reading the stream back: %v; again from %d", err, v.last)
		time.Sleep(100 * time.Millisecond)
	}
}

// responderView is what a responder must hold for the reference state.
func responderView(ref map[string]ledger.Status) map[string]responder.Status {
	m := map[string]responder.Status{}
	for k, s := range ref {
		var st responder.Status
		if s.Issued != nil {
			st.Issued, st.NotAfter = true, s.Issued.NotAfter
		}
		if s.Revoked != nil {
			st.Revoked, st.RevokedAt, st.Reason = true, s.Revoked.Time, s.Revoked.Reason
			st.NotAfter = max(st.NotAfter, s.Revoked.NotAfter)
		}
		m[k] = st
	}
	return m
}

// diffResponder counts the serials whose status differs.
func diffResponder(t *testing.T, what string, got, want map[string]responder.Status) int {
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if bad < 5 {
				t.Errorf("%s: %s: got %+v (present %v), want %+v", what, k, g, ok, w)
			}
			bad++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if bad < 5 {
				t.Errorf("%s: %s: not in the ledger", what, k)
			}
			bad++
		}
	}
	return bad
}

// diffCRL counts the revocations crlgen holds wrongly or lacks.
func diffCRL(t *testing.T, what string, got map[string]crlgen.Revocation, ref map[string]ledger.Status) int {
	bad, want := 0, 0
	for k, s := range ref {
		if s.Revoked == nil {
			continue
		}
		want++
		g, ok := got[k]
		if !ok || g.Time != s.Revoked.Time || g.Reason != s.Revoked.Reason {
			if bad < 5 {
				t.Errorf("%s: %s: got %+v (present %v), want time %d reason %d", what, k, g, ok, s.Revoked.Time, s.Revoked.Reason)
			}
			bad++
		}
	}
	if len(got) != want {
		t.Errorf("%s: %d revocations, the ledger has %d", what, len(got), want)
		bad += max(len(got)-want, want-len(got))
	}
	return bad
}

// ocspStatus asks the responder at base about cert and verifies the
// signature of the answer.
func ocspStatus(base string, cert, issuer *x509.Certificate) (int, error) {
	req, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return 0, err
	}
	resp, err := http.Post(base+"/manufacturing", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, err
	}
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		return 0, err
	}
	return r.Status, nil
}

func parsePEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("chaos: not PEM: %.40q", s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parsePEM(t, string(b))
}

// crlNumber fetches a CRL and returns its number (nil when none is
// published yet).
func crlNumber(u string) (*big.Int, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return nil, nil
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, err
	}
	return crl.Number, nil
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// batchFigures are the checks of what clients received against the stream.
type batchFigures struct {
	attempts, received, lost, differ, twice, overIssued int
}

// checkBatches checks every certificate the clients received against the
// stream: present, byte-identical, recorded once, and no batch issued
// more than once.
func checkBatches(t *testing.T, v *streamView, batches []*batchRun) batchFigures {
	t.Helper()
	var f batchFigures
	for _, b := range batches {
		f.attempts += b.attempts
		if b.resp == nil {
			continue
		}
		if b.resp.Issued != len(b.csrs) {
			t.Errorf("batch %d: %d of %d issued: %+v", b.n, b.resp.Issued, len(b.csrs), b.resp.Results)
		}
		for _, r := range b.resp.Results {
			if r.Certificate == "" {
				continue
			}
			f.received++
			cert := parsePEM(t, r.Certificate)
			st := v.state.Get("manufacturing", cert.SerialNumber)
			switch {
			case st.Issued == nil:
				f.lost++
				t.Errorf("LOST: batch %d serial %s was answered but is not in the ledger", b.n, r.Serial)
			case !bytes.Equal(st.Issued.DER, cert.Raw):
				f.differ++
				t.Errorf("batch %d serial %s: the ledger holds another certificate", b.n, r.Serial)
			}
		}
		if got := v.batches[b.resp.BatchID]; got != len(b.resp.Results) {
			f.overIssued++
			t.Errorf("batch %d: %d issuance records in the ledger for %d CSRs", b.n, got, len(b.resp.Results))
		}
	}
	for k, n := range v.issued {
		if n > 1 {
			f.twice++
			t.Errorf("serial %s recorded %d times", k, n)
		}
	}
	return f
}
