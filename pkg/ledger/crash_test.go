package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
)

// acked remembers every certificate whose chunk a publisher saw committed.
type acked struct {
	mu      sync.Mutex
	serials map[string]bool
	chunks  int
	retried int // chunks whose ack was lost and whose guard proved the commit
}

// publish commits chunks of 10 with fresh keys until stop closes, retrying
// a failed chunk with the same idempotency key, as the signer does.
func (a *acked) publish(t *testing.T, l *ledger.Ledger, stop <-chan struct{}, gaps chan<- time.Duration) {
	lastOK := time.Now()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("key-%d-%d", time.Now().UnixNano(), n)
		is := issued("manufacturing", 10)
		c := chunk(key, 1, 0, is)
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := l.CommitChunk(ctx, c)
			cancel()
			if err == nil {
				a.record(c.Guard.Serials, false)
				break
			}
			if testing.Verbose() && attempt%10 == 0 {
				t.Logf("%s attempt %d: %v", time.Now().Format("15:04:05.000"), attempt, err)
			}
			if errors.Is(err, ledger.ErrGuardExists) {
				// An earlier attempt committed; its ack was lost. The guard says what.
				g, gerr := l.Guard(context.Background(), "acme", c.Guard.Key, 0)
				if gerr != nil {
					t.Errorf("guard after ErrGuardExists: %v", gerr)
					return
				}
				a.record(g.Serials, true)
				break
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		if gaps != nil {
			gaps <- time.Since(lastOK)
		}
		lastOK = time.Now()
	}
}

func (a *acked) record(serials [][]byte, retried bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.serials == nil {
		a.serials = map[string]bool{}
	}
	for _, s := range serials {
		a.serials[string(s)] = true
	}
	a.chunks++
	if retried {
		a.retried++
	}
}

func (a *acked) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.chunks
}

// counter is a reader that counts how often each serial was issued.
type counter struct {
	mu     sync.Mutex
	issued map[string]int
	last   uint64
}

func (c *counter) Apply(es []ledger.Entry, last uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		if e.Err == nil && e.Record.Kind == ledger.KindIssued {
			c.issued[string(e.Record.Issued.Serial)]++
		}
	}
	c.last = last
	return nil
}

// verify reads the whole stream and checks that every acknowledged
// certificate is there exactly once, and nothing is there twice.
func verify(t *testing.T, l *ledger.Ledger, a *acked) {
	t.Helper()
	c := &counter{issued: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	caught := make(chan struct{})
	go l.Consume(ctx, 0, c, ledger.ConsumeOptions{CaughtUp: func(uint64) { close(caught) }})
	select {
	case <-caught:
	case <-time.After(30 * time.Second):
		t.Fatal("reader did not catch up")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	lost := 0
	for s := range a.serials {
		if c.issued[s] == 0 {
			lost++
		}
	}
	twice := 0
	for _, n := range c.issued {
		if n > 1 {
			twice++
		}
	}
	t.Logf("acknowledged chunks %d (%d proved by their guard after a lost ack), certificates acknowledged %d, in stream %d, lost %d, twice %d",
		a.chunks, a.retried, len(a.serials), len(c.issued), lost, twice)
	if lost != 0 || twice != 0 {
		t.Fatalf("%d acknowledged certificates lost, %d stored twice", lost, twice)
	}
}

// TestSingleNodeSIGKILL: a real nats-server with sync always is killed
// with SIGKILL while records are published, then restarted. Every
// acknowledged record is there, none twice.
func TestSingleNodeSIGKILL(t *testing.T) {
	n := ledgertest.Single(t, true)
	l, err := ledger.Open(context.Background(), ledger.Config{URL: n.URL(), MonitorURLs: []string{n.MonitorURL()}, AckTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := &acked{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); a.publish(t, l, stop, nil) }()
	}
	for kill := range 3 {
		target := a.count() + 50
		waitFor(t, 60*time.Second, func() bool { return a.count() >= target })
		n.Kill()
		t.Logf("SIGKILL %d after %d chunks", kill+1, a.count())
		n.Start(t)
	}
	target := a.count() + 50
	waitFor(t, 60*time.Second, func() bool { return a.count() >= target })
	close(stop)
	wg.Wait()
	verify(t, l, a)
}

// TestRefusesLazyFsync: a server with JetStream's default lazy fsync is refused.
func TestRefusesLazyFsync(t *testing.T) {
	n := ledgertest.Single(t, false)
	_, err := ledger.Open(context.Background(), ledger.Config{URL: n.URL(), MonitorURLs: []string{n.MonitorURL()}}, nil)
	if !errors.Is(err, ledger.ErrNotDurable) {
		t.Fatalf("Open on a lazy-fsync server: %v, want ErrNotDurable", err)
	}
}

// TestClusterKillFollowerThenLeader: a three-node cluster, stream with
// three replicas. While publishing, SIGKILL a follower (and bring it
// back), then the stream leader. Every acknowledged record survives, and
// publishing resumes within a bounded time.
func TestClusterKillFollowerThenLeader(t *testing.T) {
	c := ledgertest.NewCluster(t)
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Config{URL: c.URL(), MonitorURLs: c.MonitorURLs(), Replicas: 3, AckTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a := &acked{}
	stop := make(chan struct{})
	gaps := make(chan time.Duration, 1<<16)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); a.publish(t, l, stop, gaps) }()
	}
	leader := func() string {
		var name string
		waitFor(t, 30*time.Second, func() bool {
			var err error
			name, err = l.StreamLeader(ctx)
			return err == nil && name != ""
		})
		return name
	}
	maxGap := func() time.Duration {
		var m time.Duration
		for {
			select {
			case g := <-gaps:
				m = max(m, g)
			default:
				return m
			}
		}
	}
	waitFor(t, 30*time.Second, func() bool { return a.count() >= 50 })
	lead := leader()
	var follower *ledgertest.Node
	for _, n := range c.Nodes {
		if n.Name != lead {
			follower = n
			break
		}
	}
	maxGap()
	follower.Kill()
	t.Logf("SIGKILL follower %s", follower.Name)
	target := a.count() + 50
	waitFor(t, 60*time.Second, func() bool { return a.count() >= target })
	t.Logf("longest wait for an ack with a follower down: %s", maxGap())
	follower.Start(t)

	target = a.count() + 50
	waitFor(t, 60*time.Second, func() bool { return a.count() >= target })
	lead = leader()
	maxGap()
	c.Node(lead).Kill()
	killed := time.Now()
	t.Logf("SIGKILL stream leader %s", lead)
	target = a.count() + 1
	waitFor(t, 60*time.Second, func() bool { return a.count() >= target })
	t.Logf("first ack after the leader died: %s", time.Since(killed).Round(time.Millisecond))
	target = a.count() + 50
	waitFor(t, 60*time.Second, func() bool { return a.count() >= target })
	gap := maxGap()
	t.Logf("longest wait for an ack across the leader's death: %s (new leader %s)", gap, leader())
	// The bound: leader election (about 2-4 s in nats-server) plus our 2 s
	// ack timeout and retry; 15 s leaves room for a loaded CI machine.
	if gap > 15*time.Second {
		t.Errorf("publishing stalled %s after the leader died, want at most 15s", gap)
	}
	c.Node(lead).Start(t)
	close(stop)
	wg.Wait()
	verify(t, l, a)

}
