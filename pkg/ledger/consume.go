package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Entry is one record as a reader receives it.
type Entry struct {
	Seq    uint64 // stream sequence
	Time   time.Time
	Record Record
	// Err is set when the record could not be decoded: ErrUnknownKind for
	// a kind this reader does not know (skip it), another error for a
	// damaged record (skip it and alert).
	Err error
}

// Applier is a reader's state. Apply must make the entries' effects and
// lastSeq durable together (one synced write), and must be idempotent:
// entries at or below the last applied sequence change nothing.
type Applier interface {
	Apply(entries []Entry, lastSeq uint64) error
}

// ConsumeOptions tune Consume.
type ConsumeOptions struct {
	// MaxBatch is the most entries handed to one Apply. Default 512.
	MaxBatch int
	// CaughtUp, if set, is called once, when the reader has applied every
	// record that was in the stream when Consume started. Until then a
	// reader must not answer from its state (the responder says tryLater).
	CaughtUp func(lastSeq uint64)
	// StallAfter: when the stream holds a record after the last one
	// delivered and nothing arrives for this long, Consume returns
	// ErrStalled (Follow then resumes on a new consumer). Default 10 s.
	StallAfter time.Duration
}

// ErrStalled: the consumer stopped delivering although the stream's
// leader holds records after the last one it delivered, or the leader
// cannot be asked. The client library repairs the consumers it knows to
// be lost; this is the net under that, for any other way a consumer can
// fall silent (a cluster's node dying with it): a new consumer gets the
// records.
var ErrStalled = errors.New("ledger: the consumer stopped delivering records the stream holds")

// probeEvery is how long a reader goes without a record before it asks
// the stream whether anything after its position exists.
const probeEvery = 2 * time.Second

// Consume delivers every record after from (the reader's last applied
// sequence, 0 for none) to a, in stream order, until ctx ends or Apply
// fails. It uses an ordered consumer: the position lives with the reader's
// state, not on the server, and a gap or a lost consumer is repaired by
// the client recreating it from the last delivered sequence.
func (l *Ledger) Consume(ctx context.Context, from uint64, a Applier, opts ConsumeOptions) error {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.StallAfter <= 0 {
		opts.StallAfter = 10 * time.Second
	}
	target, err := l.LastSeq(ctx)
	if err != nil {
		return err
	}
	caughtUp := false
	check := func(applied uint64) {
		if !caughtUp && applied >= target {
			caughtUp = true
			if opts.CaughtUp != nil {
				opts.CaughtUp(applied)
			}
		}
	}
	check(from)
	// A bounded number of attempts to make the consumer again (the
	// default, forever, would hide a cluster that cannot place it from
	// Follow, which reports and retries).
	cc := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, MaxResetAttempts: 4}
	if from > 0 {
		cc.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cc.OptStartSeq = from + 1
	}
	// Bounded: a cluster can leave the request to make a consumer without
	// an answer (a chaos run waited two minutes on it after a leader's
	// death); the caller tries again with a new one.
	cctx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
	cons, err := l.js.OrderedConsumer(cctx, l.cfg.Stream, cc)
	cancel()
	if err != nil {
		return fmt.Errorf("ledger: consumer: %w", err)
	}
	// Short pull expiry and heartbeats: a consumer that a cluster lost
	// (its server killed, the stream's leader moved) is noticed and made
	// again within seconds rather than after the 30 s defaults, which is
	// what keeps a reader within the one-second freshness goal.
	// A set record holds up to SetSize certificates (up to SetBytes): at
	// most 32 messages are pulled ahead, which bounds the client's buffer.
	it, err := cons.Messages(jetstream.PullMaxMessages(min(2*opts.MaxBatch, 32)), jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("ledger: consume: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	type next struct {
		m   jetstream.Msg
		err error
	}
	msgs := make(chan next, opts.MaxBatch)
	done := make(chan struct{})
	defer close(done) // runs before it.Stop: the reading goroutine then ends
	go func() {
		for {
			m, err := it.Next()
			select {
			case msgs <- next{m, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	buf := make([]Entry, 0, opts.MaxBatch)
	applied := from
	seen := from // the last sequence delivered, applied or not
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		last := buf[len(buf)-1].Seq
		if err := a.Apply(buf, last); err != nil {
			return fmt.Errorf("ledger: apply up to %d: %w", last, err)
		}
		applied = last
		buf = buf[:0]
		check(applied)
		return nil
	}
	// A short idle flush: the server's pending count is a hint, not a
	// promise (after a cluster's leader changes it can stay above zero),
	// so what has arrived is applied as soon as the stream goes quiet.
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	// The probe: after probeEvery without a record, is there one after
	// the last delivered? If not, the reader is caught up (also when the
	// records at the stream's end have expired, so that its last sequence
	// is never delivered); if so for StallAfter, the consumer is stalled.
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	lastArrival, waitingSince := time.Now(), time.Time{}
	for {
		var n next
		select {
		case n = <-msgs:
			lastArrival, waitingSince = time.Now(), time.Time{}
		case <-idle.C:
			if err := flush(); err != nil {
				return err
			}
			continue
		case <-probe.C:
			if time.Since(lastArrival) < probeEvery {
				continue
			}
			more, err := l.holdsAfter(ctx, seen)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil && !more {
				waitingSince = time.Time{}
				if err := flush(); err != nil {
					return err
				}
				if !caughtUp {
					target = applied
					check(applied)
				}
				continue
			}
			// Records wait, or the stream cannot say (a probe that fails
			// as long is as bad a sign).
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			} else if time.Since(waitingSince) >= opts.StallAfter {
				if ferr := flush(); ferr != nil {
					return ferr
				}
				why := "records wait"
				if err != nil {
					why = "the stream does not answer: " + err.Error()
				}
				return fmt.Errorf("%w (after sequence %d, nothing for %s, %s; %s)", ErrStalled, seen, time.Since(lastArrival).Round(time.Second), why, l.placement(ctx, cons))
			}
			continue
		}
		if n.err != nil {
			if ctx.Err() != nil || errors.Is(n.err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("ledger: consume: %w", n.err)
		}
		md, err := n.m.Metadata()
		if err != nil {
			return fmt.Errorf("ledger: consume: metadata: %w", err)
		}
		if md.Sequence.Stream <= applied {
			continue // delivered again after a consumer reset
		}
		seen = max(seen, md.Sequence.Stream)
		r, derr := Decode(n.m.Data())
		if derr != nil {
			buf = append(buf, Entry{Seq: md.Sequence.Stream, Time: md.Timestamp, Record: r, Err: derr})
		} else {
			// A set's certificates share its sequence and are applied in the same call.
			for _, x := range r.Records() {
				buf = append(buf, Entry{Seq: md.Sequence.Stream, Time: md.Timestamp, Record: x})
			}
		}
		if md.NumPending == 0 || len(buf) >= opts.MaxBatch {
			if err := flush(); err != nil {
				return err
			}
		} else {
			idle.Reset(20 * time.Millisecond)
		}
	}
}

// holdsAfter says whether the stream holds a record after seq. It asks
// the stream's leader (JetStream's message get API, not a direct get,
// which any replica may answer from behind): a lagging replica's "none"
// would make a reader caught up early.
func (l *Ledger) holdsAfter(ctx context.Context, seq uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
	defer cancel()
	req, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Next string `json:"next_by_subj"`
	}{seq + 1, l.cfg.Prefix + ".>"})
	m, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+l.cfg.Stream, req)
	if err != nil {
		return false, err
	}
	var resp struct {
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return false, err
	}
	switch {
	case resp.Error == nil:
		return true, nil
	case resp.Error.ErrCode == errNoMessageFound:
		return false, nil
	default:
		return false, resp.Error
	}
}

// placement says where a consumer and the stream's replicas are, for the
// report of a stalled consumer.
func (l *Ledger) placement(ctx context.Context, cons jetstream.Consumer) string {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
	defer cancel()
	var b strings.Builder
	if ci := cons.CachedInfo(); ci != nil {
		fmt.Fprintf(&b, "consumer %s", ci.Name)
		if ci.Cluster != nil {
			fmt.Fprintf(&b, " on %s", ci.Cluster.Leader)
		}
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		fmt.Fprintf(&b, ", stream info: %v", err)
		return b.String()
	}
	fmt.Fprintf(&b, ", stream last %d", info.State.LastSeq)
	if c := info.Cluster; c != nil {
		fmt.Fprintf(&b, ", leader %s", c.Leader)
		for _, r := range c.Replicas {
			fmt.Fprintf(&b, ", replica %s current=%v lag=%d", r.Name, r.Current, r.Lag)
		}
	}
	return b.String()
}

// FollowOptions tune Follow.
type FollowOptions struct {
	ConsumeOptions
	// Failed, if set, is called when applying or consuming fails, before
	// Follow waits and resumes from the reader's last applied sequence.
	// The reader's state is behind from then on until CaughtUp is called
	// again.
	Failed func(err error, retryIn time.Duration)
}

// Follow is Consume for a long-running reader: when Apply or the stream
// fails (a full disk, a lost connection), it calls Failed, waits with
// capped exponential backoff and resumes from lastApplied(), calling
// CaughtUp again when it has caught up once more. It returns only when
// ctx ends.
func (l *Ledger) Follow(ctx context.Context, lastApplied func() (uint64, error), a Applier, opts FollowOptions) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		from, err := lastApplied()
		if err == nil {
			healthy := false
			co := opts.ConsumeOptions
			co.CaughtUp = func(seq uint64) {
				healthy = true
				if opts.CaughtUp != nil {
					opts.CaughtUp(seq)
				}
			}
			err = l.Consume(ctx, from, a, co)
			if healthy {
				wait = 100 * time.Millisecond
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("ledger: consume ended")
		}
		if opts.Failed != nil {
			opts.Failed(err, wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}
