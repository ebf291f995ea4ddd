//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/crlgen"
	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/responder"
)

// batchRun is one batch submission and what the client got back.
type batchRun struct {
	n        int
	key      string
	csrs     []client.CSR
	resp     *client.BatchResponse
	attempts int
}

// submit sends b until the signer answers, with the same key every time.
func submit(t *testing.T, c *client.Client, b *batchRun, limit time.Duration) {
	start := time.Now()
	for {
		b.attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := c.SubmitBatch(ctx, "manufacturing", "device", b.key, nil, b.csrs)
		cancel()
		if err == nil {
			b.resp = r
			return
		}
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			t.Errorf("batch %d: %v", b.n, err)
			return
		}
		if time.Since(start) > limit {
			t.Errorf("batch %d: no answer within %s, last: %v", b.n, limit, err)
			return
		}
		pause(100 * time.Millisecond)
	}
}

// revoke revokes serial until the signer says it is done.
func revoke(t *testing.T, c *client.Client, serial string, limit time.Duration) bool {
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Revoke(ctx, serial, "keyCompromise", nil)
		cancel()
		if err == nil {
			return true
		}
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			t.Errorf("revoke %s: %v", serial, err)
			return false
		}
		if time.Since(start) > limit {
			t.Errorf("revoke %s: no answer within %s, last: %v", serial, limit, err)
			return false
		}
		pause(100 * time.Millisecond)
	}
}

// killer SIGKILLs p at random intervals in [every[0], every[1]) until ctx ends.
func killer(ctx context.Context, wg *sync.WaitGroup, p *proc, every [2]time.Duration) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			d := every[0] + rand.N(every[1]-every[0])
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
				p.kill()
			}
		}
	}()
}

// TestSIGKILLSingleNode: the signer, the responder and crlgen run as real
// processes on one nats-server node. While clients submit batches and
// revoke, the suite SIGKILLs the signer at random moments, the signer
// kills itself at random between the HSM signature and the ledger's
// acknowledgement, between the acknowledgement and the answer, and
// halfway through writing the answer; the readers are SIGKILLed at random;
// the nats-server node is SIGKILLed and restarted. Afterwards: every
// certificate a client received is in the ledger, byte for byte; no serial
// is recorded twice; no batch issued more than once; every batch retried
// with its key gives back the same certificates and adds nothing; the
// responder's and crlgen's states equal the ledger's and a fresh rebuild
// from it; OCSP says revoked for every revoked certificate; CRL numbers
// never went backwards.
func TestSIGKILLSingleNode(t *testing.T) {
	p := prof(t)
	node := ledgertest.Single(t, true)
	lc := ledger.Config{URL: node.URL(), MonitorURLs: []string{node.MonitorURL()}}
	faults := fmt.Sprintf("signer.after-sign=%g,signer.after-ack=%g,signer.mid-answer=%g,crlgen.after-sign=0.2", p.faultP, p.faultP, p.faultP)
	s := newSite(t, lc, faults)
	for _, x := range []*proc{s.signer, s.responder, s.crlgen} {
		x.supervise(t)
		defer x.stop()
	}
	if _, err := ready(s.signerURL, time.Minute); err != nil {
		t.Fatal(err)
	}
	issuer := readCert(t, s.h.File("manufacturing.pem"))

	batches := make([]*batchRun, p.batches)
	for i := range batches {
		n := p.batchSize[0] + rand.N(p.batchSize[1]-p.batchSize[0]+1)
		batches[i] = &batchRun{n: i, key: fmt.Sprintf("chaos-%d-%d", time.Now().UnixNano(), i), csrs: csrs(t, fmt.Sprintf("MTR-%04d", i), n)}
	}
	c := s.client()
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var killers sync.WaitGroup
	killer(ctx, &killers, s.signer, p.signerKills)
	killer(ctx, &killers, s.responder, p.readerKills)
	killer(ctx, &killers, s.crlgen, p.readerKills)

	// A CDN pulls the CRLs all along: their numbers must only go up.
	var crlMu sync.Mutex
	crlNums := map[string]*big.Int{}
	crlBackwards, crlPulls := 0, 0
	watch := func(u string) {
		n, err := crlNumber(u)
		if err != nil || n == nil {
			return
		}
		crlMu.Lock()
		defer crlMu.Unlock()
		crlPulls++
		if old := crlNums[u]; old != nil && n.Cmp(old) < 0 {
			crlBackwards++
			t.Errorf("%s: CRL number went back from %s to %s", u, old, n)
		}
		if old := crlNums[u]; old == nil || n.Cmp(old) > 0 {
			crlNums[u] = n
		}
	}
	killers.Add(1)
	go func() {
		defer killers.Done()
		for ctx.Err() == nil {
			watch(s.crlgenURL + "/manufacturing.crl")
			watch(s.crlgenURL + "/manufacturing-delta.crl")
			pause(200 * time.Millisecond)
		}
	}()

	var mu sync.Mutex
	var revoked []string
	work := make(chan *batchRun)
	var workers sync.WaitGroup
	for range p.workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for b := range work {
				submit(t, c, b, 3*time.Minute)
				if b.resp != nil && b.n%3 == 0 && len(b.resp.Results) > 0 && b.resp.Results[0].Serial != "" {
					if sn := b.resp.Results[0].Serial; revoke(t, c, sn, 3*time.Minute) {
						mu.Lock()
						revoked = append(revoked, sn)
						mu.Unlock()
					}
				}
			}
		}()
	}
	natsKills := 0
	for i, b := range batches {
		if p.natsKills > 0 && i > 0 && i%(p.batches/(p.natsKills+1)) == 0 && natsKills < p.natsKills {
			node.Kill()
			pause(time.Duration(100+rand.IntN(700)) * time.Millisecond)
			node.Start(t)
			natsKills++
		}
		work <- b
		if i%50 == 49 {
			t.Logf("%d/%d batches sent, %s", i+1, len(batches), time.Since(start).Round(time.Second))
		}
	}
	close(work)
	workers.Wait()
	cancel()
	killers.Wait()
	elapsed := time.Since(start)

	// Everything up again, then the checks.
	for _, u := range []string{s.signerURL, s.responderURL, s.crlgenURL} {
		if _, err := ready(u, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	l := s.openLedger()
	v := readStream(t, l)
	f := checkBatches(t, v, batches)
	revokedOK := 0
	for _, sn := range revoked {
		x, _ := new(big.Int).SetString(sn, 16)
		if v.state.Get("manufacturing", x).Revoked != nil {
			revokedOK++
		}
	}
	if revokedOK != len(revoked) {
		t.Errorf("LOST: %d of %d acknowledged revocations are not in the ledger", len(revoked)-revokedOK, len(revoked))
	}

	// Retries after the fact: the same certificates, nothing new.
	lastBefore, _ := l.LastSeq(context.Background())
	replayMismatch := 0
	for _, b := range batches {
		if b.resp == nil {
			continue
		}
		again := &batchRun{n: b.n, key: b.key, csrs: b.csrs}
		submit(t, c, again, time.Minute)
		if again.resp == nil || !again.resp.Replayed || len(again.resp.Results) != len(b.resp.Results) {
			replayMismatch++
			continue
		}
		for i := range b.resp.Results {
			if again.resp.Results[i].Certificate != b.resp.Results[i].Certificate {
				replayMismatch++
				break
			}
		}
	}
	lastAfter, _ := l.LastSeq(context.Background())
	if replayMismatch > 0 || lastAfter != lastBefore {
		t.Errorf("retried batches: %d differ; stream grew from %d to %d records", replayMismatch, lastBefore, lastAfter)
	}

	// The readers: caught up, OCSP right, state equal to the ledger's and
	// to a rebuild.
	for _, u := range []string{s.responderURL, s.crlgenURL} {
		if err := caughtUp(u, lastAfter, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	ocspWrong := 0
	for _, sn := range revoked {
		x, _ := new(big.Int).SetString(sn, 16)
		cert, err := l.Lookup(context.Background(), "manufacturing", x)
		if err != nil {
			t.Fatal(err)
		}
		parsed := mustParse(t, cert.Issued.DER)
		if st, err := ocspStatus(s.responderURL, parsed, issuer); err != nil || st != ocsp.Revoked {
			ocspWrong++
			t.Errorf("OCSP for revoked %s: status %d, %v", sn, st, err)
		}
	}
	ocspGood := 0
	for _, b := range batches[:min(len(batches), 100)] {
		if b.resp == nil || len(b.resp.Results) < 2 || b.resp.Results[1].Certificate == "" {
			continue
		}
		if st, err := ocspStatus(s.responderURL, parsePEM(t, b.resp.Results[1].Certificate), issuer); err != nil || st != ocsp.Good {
			ocspWrong++
			t.Errorf("OCSP for good %s: status %d, %v", b.resp.Results[1].Serial, st, err)
		}
		ocspGood++
	}
	crlMu.Lock()
	lastFull := crlNums[s.crlgenURL+"/manufacturing.crl"]
	crlMu.Unlock()
	s.responder.stop()
	s.crlgen.stop()
	ref := v.state.Snapshot()
	want := responderView(ref)
	rs, rseq, err := responder.ReadState(s.responderDir)
	if err != nil {
		t.Fatal(err)
	}
	cs, cseq, err := crlgen.ReadState(s.crlgenDir)
	if err != nil {
		t.Fatal(err)
	}
	readerWrong := diffResponder(t, "responder after kills", rs, want) + diffCRL(t, "crlgen after kills", cs, ref)
	// A fresh rebuild from the stream, on empty stores.
	rbURL, rb := s.responderProc("responder-rebuild", s.responderDir+"-rebuild", 64<<20)
	cbURL, cb := s.crlgenProc("crlgen-rebuild", s.crlgenDir+"-rebuild")
	rb.supervise(t)
	cb.supervise(t)
	for _, u := range []string{rbURL, cbURL} {
		if err := caughtUp(u, lastAfter, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var rebuiltFull *big.Int
	checkfor.Within(30*time.Second, 100*time.Millisecond, func() bool {
		rebuiltFull, _ = crlNumber(cbURL + "/manufacturing.crl")
		return rebuiltFull != nil
	})
	rb.stop()
	cb.stop()
	rs2, rseq2, err := responder.ReadState(s.responderDir + "-rebuild")
	if err != nil {
		t.Fatal(err)
	}
	cs2, cseq2, err := crlgen.ReadState(s.crlgenDir + "-rebuild")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(rs, rs2) || rseq != rseq2 {
		readerWrong++
		t.Errorf("responder: the killed store (%d serials, seq %d) differs from a rebuild (%d serials, seq %d)", len(rs), rseq, len(rs2), rseq2)
	}
	if !maps.EqualFunc(cs, cs2, func(a, b crlgen.Revocation) bool { return a.Time == b.Time && a.Reason == b.Reason && a.Seq == b.Seq }) || cseq != cseq2 {
		readerWrong++
		t.Errorf("crlgen: the killed store (%d revocations, seq %d) differs from a rebuild (%d, seq %d)", len(cs), cseq, len(cs2), cseq2)
	}
	if lastFull != nil && (rebuiltFull == nil || rebuiltFull.Cmp(lastFull) <= 0) {
		crlBackwards++
		t.Errorf("the rebuilt crlgen's first full CRL is number %v, after %v", rebuiltFull, lastFull)
	}

	self := s.signer.selfKills()
	cself := s.crlgen.selfKills()
	t.Logf(`
chaos: SIGKILL on one node (profile %s, %s)
  batches submitted            %d (%d attempts), certificates received %d, revocations acknowledged %d
  signer SIGKILLed             %d at random, %d at after-sign, %d at after-ack, %d at mid-answer (%d starts)
  responder SIGKILLed          %d (%d starts, %d exits of its own)
  crlgen SIGKILLed             %d at random, %d after signing a CRL (%d starts, %d exits of its own)
  nats-server SIGKILLed        %d
  ledger records checked       %d (stream sequence %d)
  lost certificates            %d; differing %d; serials twice %d; batches issued more than once %d
  retried batches              %d differ, stream grew by %d
  OCSP checked                 %d revoked, %d good: %d wrong
  reader states                responder %d serials, crlgen %d revocations: %d differences (ledger and rebuild)
  CRL pulls                    %d, numbers backwards %d
`, *profileName, elapsed.Round(time.Second), len(batches), f.attempts, f.received, len(revoked),
		s.signer.kills, self["signer.after-sign"], self["signer.after-ack"], self["signer.mid-answer"], s.signer.starts,
		s.responder.kills, s.responder.starts, s.responder.exits, s.crlgen.kills, cself["crlgen.after-sign"], s.crlgen.starts, s.crlgen.exits,
		natsKills, v.records, v.last, f.lost, f.differ, f.twice, f.overIssued, replayMismatch, lastAfter-lastBefore,
		len(revoked), ocspGood, ocspWrong, len(rs), len(cs), readerWrong, crlPulls, crlBackwards)
	if s.signer.kills+self["signer.after-sign"]+self["signer.after-ack"]+self["signer.mid-answer"] == 0 {
		t.Error("no fault was injected into the signer")
	}
}
