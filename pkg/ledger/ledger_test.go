package ledger_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/certmill/certmill/pkg/checkfor"
	"math/big"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func issued(issuer string, n int) []ledger.Issued {
	out := make([]ledger.Issued, n)
	var set serial.Set
	for i := range out {
		if i%ledger.SetSize == 0 {
			set, _ = serial.NewSet()
		}
		sn, _ := set.New()
		der := make([]byte, 400)
		rand.Read(der)
		out[i] = ledger.Issued{Issuer: issuer, Serial: sn.Bytes(), NotBefore: time.Now().Unix(),
			NotAfter: time.Now().AddDate(1, 0, 0).Unix(), DER: der, Tenant: "acme", Profile: "device",
			Index: i, Metadata: map[string]string{"device_id": fmt.Sprint("MTR-", i)}, IssuedAt: time.Now().UnixNano()}
	}
	return out
}

func chunk(key string, n, idx int, is []ledger.Issued) ledger.Chunk {
	g := ledger.Batch{Tenant: "acme", Issuer: "manufacturing", Profile: "device", Key: ledger.KeyHash("acme", "manufacturing", "device", key), Chunk: idx, Chunks: n}
	for _, x := range is {
		g.Indexes = append(g.Indexes, x.Index)
		g.Serials = append(g.Serials, x.Serial)
		g.NotAfter = max(g.NotAfter, x.NotAfter)
	}
	return ledger.Chunk{Guard: g, Issued: is}
}

func TestCommitLookupRevoke(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Embedded(t)
	is := issued("manufacturing", 50)
	first, err := l.CommitChunk(ctx, chunk("k1", 1, 0, is))
	if err != nil {
		t.Fatal(err)
	}
	if first != 1 {
		t.Fatalf("first sequence %d, want 1", first)
	}
	// The same key and chunk again, with other certificates: refused whole.
	again := issued("manufacturing", 50)
	if _, err := l.CommitChunk(ctx, chunk("k1", 1, 0, again)); !errors.Is(err, ledger.ErrGuardExists) {
		t.Fatalf("second commit with the same key: %v, want ErrGuardExists", err)
	}
	if _, err := l.Lookup(ctx, "manufacturing", new(big.Int).SetBytes(again[0].Serial)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("a certificate of the refused chunk is in the ledger: %v", err)
	}
	g, err := l.Guard(ctx, "acme", ledger.KeyHash("acme", "manufacturing", "device", "k1"), 0)
	if err != nil || len(g.Serials) != 50 || string(g.Serials[7]) != string(is[7].Serial) {
		t.Fatalf("guard: %v %+v", err, g)
	}
	c, err := l.Lookup(ctx, "manufacturing", new(big.Int).SetBytes(is[3].Serial))
	if err != nil || c.Revoked != nil || string(c.Issued.DER) != string(is[3].DER) || c.Issued.Metadata["device_id"] != "MTR-3" {
		t.Fatalf("lookup: %v %+v", err, c)
	}
	r := ledger.Revoked{Issuer: "manufacturing", Serial: is[3].Serial, Time: time.Now().UnixNano(), Reason: 1, Tenant: "acme", NotAfter: is[3].NotAfter}
	got, already, err := l.Revoke(ctx, r)
	if err != nil || already {
		t.Fatalf("revoke: %v %v", err, already)
	}
	r2 := r
	r2.Reason, r2.Time = 4, r.Time+1
	got, already, err = l.Revoke(ctx, r2)
	if err != nil || !already || got.Reason != 1 || got.Time != r.Time {
		t.Fatalf("second revoke: %v already=%v %+v, want the first revocation back", err, already, got)
	}
	c, _ = l.Lookup(ctx, "manufacturing", new(big.Int).SetBytes(is[3].Serial))
	if c.Revoked == nil || c.Revoked.Reason != 1 {
		t.Fatalf("after revoke: %+v", c.Revoked)
	}
	if _, err := l.Lookup(ctx, "manufacturing", big.NewInt(12345)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("unknown serial: %v", err)
	}
}

func TestConsumeIntoReferenceReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := ledgertest.Embedded(t)
	var is []ledger.Issued
	for i := range 3 {
		c := issued("manufacturing", 100) // a serial set never spans chunks
		is = append(is, c...)
		if _, err := l.CommitChunk(ctx, chunk("c", 3, i, c)); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range is[:10] {
		if _, _, err := l.Revoke(ctx, ledger.Revoked{Issuer: "manufacturing", Serial: x.Serial, Time: 1, Reason: 1, Tenant: "acme", NotAfter: x.NotAfter}); err != nil {
			t.Fatal(err)
		}
	}
	st := ledger.NewMemState()
	caught := make(chan uint64, 1)
	done := make(chan error, 1)
	go func() {
		done <- l.Consume(ctx, 0, st, ledger.ConsumeOptions{MaxBatch: 64, CaughtUp: func(s uint64) { caught <- s }})
	}()
	select {
	case s := <-caught:
		if s != 16 { // 3 serial sets of 100 certificates + 3 guards + 10 revoked
			t.Fatalf("caught up at %d, want 16", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not catch up")
	}
	if st.Len() != 300 {
		t.Fatalf("reader knows %d certificates", st.Len())
	}
	for i, x := range is {
		s := st.Get("manufacturing", new(big.Int).SetBytes(x.Serial))
		if s.Good() != (i >= 10) {
			t.Fatalf("certificate %d: good=%v", i, s.Good())
		}
	}
	// A record written now arrives too.
	more := issued("manufacturing", 1)
	if _, err := l.CommitChunk(ctx, chunk("d", 1, 0, more)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return st.Get("manufacturing", new(big.Int).SetBytes(more[0].Serial)).Good() })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v", err)
	}

	// Resume from the last applied sequence into the same state: nothing changes.
	before := st.LastSeq()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go l.Consume(ctx2, before, st, ledger.ConsumeOptions{CaughtUp: func(s uint64) { caught <- s }})
	if s := <-caught; s != before {
		t.Fatalf("resumed reader caught up at %d, want %d", s, before)
	}
}

// TestReferenceReaderRules: applying any record twice changes nothing, and
// a revocation never goes back to good, in any order of delivery.
func TestReferenceReaderRules(t *testing.T) {
	t.Parallel()
	is := issued("manufacturing", 1)[0]
	rev := ledger.Revoked{Issuer: "manufacturing", Serial: is.Serial, Time: 10, Reason: 1}
	rev2 := ledger.Revoked{Issuer: "manufacturing", Serial: is.Serial, Time: 20, Reason: 4}
	iss := ledger.Record{Kind: ledger.KindIssued, Issued: &is}
	r1 := ledger.Record{Kind: ledger.KindRevoked, Revoked: &rev}
	r2 := ledger.Record{Kind: ledger.KindRevoked, Revoked: &rev2}
	orders := map[string][]ledger.Record{
		"issue, revoke":               {iss, r1},
		"issue twice, revoke twice":   {iss, iss, r1, r1},
		"revoke, issue":               {r1, iss},
		"issue, revoke, issue":        {iss, r1, iss},
		"issue, revoke, other revoke": {iss, r1, r2, iss},
	}
	sn := new(big.Int).SetBytes(is.Serial)
	for name, recs := range orders {
		t.Run(name, func(t *testing.T) {
			st := ledger.NewMemState()
			var es []ledger.Entry
			for i, r := range recs {
				es = append(es, ledger.Entry{Seq: uint64(i + 1), Record: r})
			}
			st.Apply(es, uint64(len(es)))
			// The same entries again, and again with fresh sequence numbers.
			st.Apply(es, uint64(len(es)))
			for i := range es {
				es[i].Seq += 100
			}
			st.Apply(es, uint64(len(es))+100)
			s := st.Get("manufacturing", sn)
			if s.Good() || s.Revoked == nil || s.Revoked.Reason != 1 || s.Revoked.Time != 10 {
				t.Fatalf("status %+v, want revoked by the first revocation", s.Revoked)
			}
		})
	}
	st := ledger.NewMemState()
	st.Apply([]ledger.Entry{{Seq: 1, Record: iss}}, 1)
	if !st.Get("manufacturing", sn).Good() {
		t.Fatal("issued certificate not good")
	}
}

func TestRecordCodec(t *testing.T) {
	t.Parallel()
	is := issued("manufacturing", 1)[0]
	b, err := ledger.Encode(ledger.Record{Kind: ledger.KindIssued, Issued: &is})
	if err != nil {
		t.Fatal(err)
	}
	r, err := ledger.Decode(b)
	if err != nil || r.Version != ledger.Version || r.Issued.Metadata["device_id"] != "MTR-0" || string(r.Issued.DER) != string(is.DER) {
		t.Fatalf("round trip: %v %+v", err, r)
	}
	t.Logf("an issuance record with a 400-byte certificate encodes to %d bytes", len(b))
	// A future kind, with fields this reader does not know.
	type future struct {
		Version uint8          `cbor:"1,keyasint"`
		Kind    uint8          `cbor:"2,keyasint"`
		New     map[string]int `cbor:"9,keyasint"`
	}
	fb, _ := cborMarshal(future{Version: 2, Kind: 9, New: map[string]int{"x": 1}})
	if _, err := ledger.Decode(fb); !errors.Is(err, ledger.ErrUnknownKind) {
		t.Fatalf("future kind: %v, want ErrUnknownKind", err)
	}
	// A known kind with a field added later (key 99): still decodes.
	type later struct {
		Version uint8           `cbor:"1,keyasint"`
		Kind    uint8           `cbor:"2,keyasint"`
		Revoked *ledger.Revoked `cbor:"4,keyasint"`
		Extra   string          `cbor:"99,keyasint"`
	}
	lb, _ := cborMarshal(later{Version: 2, Kind: 2, Revoked: &ledger.Revoked{Issuer: "m", Serial: []byte{1}, Reason: 1}, Extra: "x"})
	if r, err := ledger.Decode(lb); err != nil || r.Revoked.Reason != 1 {
		t.Fatalf("record with a new field: %v", err)
	}
	if _, err := ledger.Decode([]byte{0xff, 0x00}); err == nil {
		t.Fatal("garbage decoded")
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	checkfor.True(t, d, cond)
}

// A chunk's certificates are stored one message per serial set; Lookup and
// Certificates find each serial from the serial alone, a serial of the
// same set that was never issued is not found, and a set cannot be
// written twice.
func TestSerialSets(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.Embedded(t)
	before, err := l.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	is := issued("manufacturing", 2*ledger.SetSize+5)
	if _, err := l.CommitChunk(ctx, chunk("sets", 1, 0, is)); err != nil {
		t.Fatal(err)
	}
	after, _ := l.LastSeq(ctx)
	if after-before != 4 { // three sets and the guard
		t.Fatalf("%d messages for %d certificates, want 4", after-before, len(is))
	}
	var serials [][]byte
	for _, x := range is {
		serials = append(serials, x.Serial)
	}
	got, err := l.Certificates(ctx, "manufacturing", serials)
	if err != nil {
		t.Fatal(err)
	}
	for i := range is {
		if !bytes.Equal(got[i].DER, is[i].DER) || got[i].Index != is[i].Index {
			t.Fatalf("certificate %d read back differs", i)
		}
	}
	c, err := l.Lookup(ctx, "manufacturing", new(big.Int).SetBytes(is[len(is)-1].Serial))
	if err != nil || !bytes.Equal(c.Issued.DER, is[len(is)-1].DER) {
		t.Fatalf("lookup of the last serial: %v", err)
	}
	stranger := append(append([]byte{}, is[0].Serial[:8]...), make([]byte, 8)...)
	if _, err := l.Lookup(ctx, "manufacturing", new(big.Int).SetBytes(stranger)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("a never-issued serial of an issued set: %v, want ErrNotFound", err)
	}
	if _, err := l.Lookup(ctx, "firmware", new(big.Int).SetBytes(is[0].Serial)); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the serial under another issuer: %v, want ErrNotFound", err)
	}
	// The same set again under another key: refused whole, nothing stored.
	again := issued("manufacturing", 3)
	for i := range again {
		again[i].Serial = append(append([]byte{}, is[0].Serial[:8]...), again[i].Serial[8:]...)
	}
	if _, err := l.CommitChunk(ctx, chunk("other", 1, 0, again)); !errors.Is(err, ledger.ErrGuardExists) {
		t.Fatalf("a set written twice: %v, want refusal", err)
	}
	if last, _ := l.LastSeq(ctx); last != after {
		t.Fatalf("the refused chunk stored %d messages", last-after)
	}
}

// TestCaughtUpWhenTheTailIsGone: the records at the stream's end can be
// gone (their TTL passed), so that the stream's last sequence is never
// delivered. A reader is caught up all the same once the stream holds
// nothing after what it has read.
func TestCaughtUpWhenTheTailIsGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := ledgertest.Embedded(t)
	if _, err := l.CommitChunk(ctx, chunk("t", 1, 0, issued("manufacturing", 10))); err != nil {
		t.Fatal(err)
	}
	// A revocation with a one-second TTL (the ledger never writes one this
	// short; the stream honours any).
	is := issued("manufacturing", 1)[0]
	data, err := ledger.Encode(ledger.Record{Version: 1, Kind: ledger.KindRevoked, Revoked: &ledger.Revoked{Issuer: "manufacturing", Serial: is.Serial, Time: 1, Reason: 1, Tenant: "acme", NotAfter: is.NotAfter}})
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("certmill.rev.manufacturing." + ledger.SerialHex(is.Serial))
	m.Data = data
	m.Header.Set("Nats-TTL", "1s")
	js, err := jetstream.New(l.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "CERTMILL")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		_, err := st.GetLastMsgForSubject(ctx, m.Subject)
		return errors.Is(err, jetstream.ErrMsgNotFound)
	})
	if last, _ := l.LastSeq(ctx); last != 3 {
		t.Fatalf("last sequence %d, want 3 (a set, a guard, the expired revocation)", last)
	}
	for seq, want := range map[uint64]bool{0: true, 1: true, 2: false, 3: false} {
		if got, err := l.HoldsAfter(ctx, seq); err != nil || got != want {
			t.Fatalf("a record after %d: %v (%v), want %v", seq, got, err, want)
		}
	}
	state := ledger.NewMemState()
	caught := make(chan uint64, 1)
	go l.Consume(ctx, 0, state, ledger.ConsumeOptions{CaughtUp: func(s uint64) { caught <- s }})
	select {
	case s := <-caught:
		if s != 2 || state.Len() != 10 {
			t.Fatalf("caught up at %d with %d certificates, want 2 and 10", s, state.Len())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the reader never said it was caught up: it waits for a sequence that will not come")
	}
}
