//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
)

// TestClusterLeaderKill: the signer commits to a three-node cluster with
// three replicas while the suite SIGKILLs the stream's leader and brings
// it back, several times. Every certificate a client received is in the
// stream afterwards, once.
func TestClusterLeaderKill(t *testing.T) {
	p := prof(t)
	cl := ledgertest.NewCluster(t)
	lc := ledger.Config{URL: cl.URL(), MonitorURLs: cl.MonitorURLs(), Replicas: 3}
	s := newSite(t, lc, "")
	for _, x := range []*proc{s.signer, s.responder} {
		x.supervise(t)
		defer x.stop()
	}
	for _, u := range []string{s.signerURL, s.responderURL} {
		if _, err := ready(u, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	l := s.openLedger()
	batches := make([]*batchRun, p.clusterBatch)
	for i := range batches {
		n := p.batchSize[0] + rand.N(p.batchSize[1]-p.batchSize[0]+1)
		batches[i] = &batchRun{n: i, key: fmt.Sprintf("cluster-%d-%d", time.Now().UnixNano(), i), csrs: csrs(t, fmt.Sprintf("GW-%04d", i), n)}
	}
	c := s.client()
	start := time.Now()
	work := make(chan *batchRun)
	var workers sync.WaitGroup
	var slowest time.Duration
	var mu sync.Mutex
	for range p.workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for b := range work {
				t0 := time.Now()
				submit(t, c, b, 3*time.Minute)
				if d := time.Since(t0); d > 20*time.Second {
					t.Logf("batch %d (%s) took %s over %d attempts", b.n, b.key, d.Round(time.Millisecond), b.attempts)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	var killed []string
	every := len(batches) / (p.leaderKills + 1)
	for i, b := range batches {
		if i > 0 && i%every == 0 && len(killed) < p.leaderKills {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			lead, err := l.StreamLeader(ctx)
			cancel()
			if err != nil || lead == "" {
				t.Fatalf("chaos: no stream leader: %v", err)
			}
			n := cl.Node(lead)
			n.Kill()
			killed = append(killed, lead)
			pause(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
			n.Start(t) // it rejoins as a follower and catches up
		}
		work <- b
	}
	close(work)
	workers.Wait()
	elapsed := time.Since(start)
	t0 := time.Now()
	v := readStream(t, l)
	readBack := time.Since(t0)
	f := checkBatches(t, v, batches)
	// The responder followed the stream across the leader's death.
	t0 = time.Now()
	if err := caughtUp(s.responderURL, v.last, 30*time.Second); err != nil {
		t.Errorf("the responder did not follow the cluster: %v", err)
	}
	responderLag := time.Since(t0)
	// A stalled consumer is noticed and made again (ledger.StallAfter,
	// 10 s); longer than that is a reader that cannot recover.
	if readBack > 30*time.Second {
		t.Errorf("reading the stream back took %s: a consumer stalled after the leader's death", readBack)
	}
	t.Logf(`
chaos: stream leader SIGKILLed in a three-node cluster, R3 (profile %s, %s)
  batches submitted            %d (%d attempts), certificates received %d
  leaders SIGKILLed            %d %v
  slowest batch                %s (across the leader elections, retries included)
  ledger records checked       %d, read back in %s (consumers made again: %d); the responder had applied them all %s after the last batch
  lost certificates            %d; differing %d; serials twice %d; batches issued more than once %d
`, *profileName, elapsed.Round(time.Second), len(batches), f.attempts, f.received, len(killed), killed,
		slowest.Round(time.Millisecond), v.records, readBack.Round(time.Millisecond), v.retries, (readBack + responderLag).Round(time.Millisecond),
		f.lost, f.differ, f.twice, f.overIssued)
}
