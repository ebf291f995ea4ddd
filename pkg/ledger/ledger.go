// Package ledger is certmill's system of record: issuance, revocation and
// batch records on a NATS JetStream stream.
//
// Writers (the signer) publish records and return only after JetStream has
// acknowledged them; a certificate reaches a caller only after that. A
// chunk of certificates commits as one atomic batch (nats-server 2.12+)
// together with its idempotency guard: one message per serial set of up to
// SetSize certificates plus the guard, each message one fsync (nats-server
// syncs every message of a batch), and it commits only if no guard for the
// same idempotency key and chunk exists: a retried batch finds the guard and gets the same
// certificates back instead of new ones.
//
// Readers (the responder, crlgen) Consume the stream from the sequence
// they last applied, which they store with their own state.
//
// Durability: the stream is file-backed and the server must fsync every
// write (sync_interval: always). Jepsen's 2025 analysis of NATS found
// acknowledged writes lost under the default lazy fsync. Open refuses a
// server that does not sync always.
package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/serial"
)

// MaxChunk is the most messages in one atomic batch: nats-server's default
// limit (streamDefaultMaxBatchSize), which an external server may keep.
const MaxChunk = 1000

// Sentinel errors callers branch on.
var (
	// ErrGuardExists: a chunk with this idempotency key was committed before.
	ErrGuardExists = errors.New("ledger: idempotency guard exists")
	// ErrNotFound: no record for that serial or key.
	ErrNotFound = errors.New("ledger: not found")
	// ErrNotDurable: the server does not fsync every write.
	ErrNotDurable = errors.New("ledger: server does not sync every write")
)

// Config says where the ledger is and how the stream is kept.
type Config struct {
	// URL of an external nats-server or cluster (nats://host:4222,...).
	// Empty: nats-server runs embedded in this process, data in Dir.
	URL string `yaml:"url"`
	// Credentials is a NATS credentials file for URL. Optional.
	Credentials string `yaml:"credentials"`
	// MonitorURLs are the servers' HTTP monitoring endpoints
	// (http://host:8222), one per server; Open reads /varz from each and
	// refuses a server that does not sync always. Required with URL.
	MonitorURLs []string `yaml:"monitor_urls"`
	// Dir holds the embedded server's data. Required without URL.
	Dir string `yaml:"dir"`
	// Listen, for the embedded server, is a host:port that other processes
	// may connect to. Empty: in-process connections only.
	Listen string `yaml:"listen"`
	// Monitor, for the embedded server, is a host:port for its HTTP
	// monitoring endpoint (/varz, /healthz), which other processes read to
	// check that it syncs every write. Empty: none.
	Monitor string `yaml:"monitor"`
	// Stream is the stream's name. Default CERTMILL.
	Stream string `yaml:"stream"`
	// Prefix is the first subject token. Default certmill.
	Prefix string `yaml:"prefix"`
	// Replicas is 1 for one server, 3 for a three-node cluster. Default 1.
	Replicas int `yaml:"replicas"`
	// DuplicateWindow is JetStream's Nats-Msg-Id window. Default 10m.
	// Idempotency beyond it rests on the batch guards, kept as long as
	// their certificates.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// RetentionMargin is how long a record outlives its certificate's
	// notAfter (a per-message TTL). Default 8760h (a year), so that CRLs
	// and lookups still see recently expired certificates.
	RetentionMargin time.Duration `yaml:"retention_margin"`
	// AckTimeout bounds each publish's wait for the acknowledgement. Default 10s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Stream == "" {
		c.Stream = "CERTMILL"
	}
	if c.Prefix == "" {
		c.Prefix = "certmill"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.RetentionMargin == 0 {
		c.RetentionMargin = 365 * 24 * time.Hour
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 10 * time.Second
	}
}

// Validate lists every problem.
func (c *Config) Validate() error {
	var p config.Problems
	if c.URL == "" && c.Dir == "" {
		p.Addf("ledger: give dir (embedded server) or url (external server)")
	}
	if c.URL != "" && len(c.MonitorURLs) == 0 {
		p.Addf("ledger.monitor_urls: required with url, to check that every server syncs every write")
	}
	if c.Replicas != 1 && c.Replicas != 3 {
		p.Addf("ledger.replicas: %d, want 1 or 3", c.Replicas)
	}
	if !ValidName(c.Stream) || !ValidName(c.Prefix) {
		p.Addf("ledger.stream and ledger.prefix: letters, digits, - and _ only")
	}
	if c.DuplicateWindow < time.Second || c.AckTimeout < time.Millisecond || c.RetentionMargin < 0 {
		p.Addf("ledger: duplicate_window, ack_timeout and retention_margin must be positive")
	}
	return p.Err()
}

// Ledger is an open connection to the stream. Safe for concurrent use.
type Ledger struct {
	cfg    Config
	log    *slog.Logger
	srv    *server.Server // embedded, or nil
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open starts or connects to the server, checks that it syncs every write,
// and creates or updates the stream.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Ledger, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Ledger{cfg: cfg, log: log}
	var err error
	if cfg.URL == "" {
		if l.srv, err = startEmbedded(cfg, log); err != nil {
			return nil, err
		}
		l.nc, err = nats.Connect("", nats.InProcessServer(l.srv), nats.Name("certmill"), nats.MaxReconnects(-1))
	} else {
		for _, m := range cfg.MonitorURLs {
			if err := CheckSyncAlways(ctx, m); err != nil {
				return nil, err
			}
		}
		opts := []nats.Option{nats.Name("certmill"), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.Timeout(5 * time.Second)}
		if cfg.Credentials != "" {
			opts = append(opts, nats.UserCredentials(cfg.Credentials))
		}
		l.nc, err = nats.Connect(cfg.URL, opts...)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("ledger: connect: %w (hint: is nats-server running with JetStream?)", err)
	}
	if l.js, err = jetstream.New(l.nc); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.ensureStream(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func startEmbedded(cfg Config, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "certmill-embedded",
		JetStream:  true,
		StoreDir:   cfg.Dir,
		// INVARIANT: every acknowledged write is on disk (fsync per write).
		SyncAlways:   true,
		SyncInterval: 2 * time.Minute,
		DontListen:   cfg.Listen == "",
		NoSigs:       true,
		NoLog:        true,
	}
	if cfg.Listen != "" {
		host, port, ok := strings.Cut(cfg.Listen, ":")
		if !ok {
			return nil, fmt.Errorf("ledger.listen: %q is not host:port", cfg.Listen)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("ledger.listen: %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, p
	}
	if cfg.Monitor != "" {
		host, port, ok := strings.Cut(cfg.Monitor, ":")
		p, err := strconv.Atoi(port)
		if !ok || err != nil {
			return nil, fmt.Errorf("ledger.monitor: %q is not host:port", cfg.Monitor)
		}
		opts.HTTPHost, opts.HTTPPort = host, p
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("ledger: embedded nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("ledger: embedded nats-server not ready within 30s")
	}
	log.Info("ledger: embedded nats-server started", "dir", cfg.Dir, "listen", cfg.Listen, "sync_always", true)
	return s, nil
}

// CheckSyncAlways reads a server's /varz and returns ErrNotDurable unless
// JetStream is configured with sync_interval: always.
func CheckSyncAlways(ctx context.Context, monitorURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(monitorURL, "/")+"/varz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ledger: read %s/varz: %w (hint: the server needs http_port for monitoring)", monitorURL, err)
	}
	defer resp.Body.Close()
	var v struct {
		JetStream struct {
			Config struct {
				SyncAlways bool `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&v); err != nil {
		return fmt.Errorf("ledger: %s/varz: %w", monitorURL, err)
	}
	if !v.JetStream.Config.SyncAlways {
		return fmt.Errorf("%w: %s (hint: set jetstream { sync_interval: always } in its configuration)", ErrNotDurable, monitorURL)
	}
	return nil
}

func (l *Ledger) ensureStream(ctx context.Context) error {
	sc := jetstream.StreamConfig{
		Name:               l.cfg.Stream,
		Description:        "certmill ledger: issued, revoked and batch records",
		Subjects:           []string{l.cfg.Prefix + ".>"},
		Storage:            jetstream.FileStorage,
		Replicas:           l.cfg.Replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew, // never drop old records to make room
		Duplicates:         l.cfg.DuplicateWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowMsgTTL:        true,
		AllowAtomicPublish: true,
	}
	// A cluster that has just formed answers "temporarily unavailable" or
	// not at all until its meta leader is elected and every peer known;
	// those are waited out (up to streamWait), a refused configuration is
	// not.
	deadline := time.Now().Add(streamWait)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := l.js.CreateOrUpdateStream(actx, sc)
		cancel()
		if err == nil {
			l.stream = s
			return nil
		}
		var api *jetstream.APIError
		if errors.As(err, &api) && api.Code == 400 || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("ledger: create stream %s: %w", l.cfg.Stream, err)
		}
		l.log.Warn("ledger: the stream cannot be made yet; retrying", "stream", l.cfg.Stream, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("ledger: create stream %s: %w", l.cfg.Stream, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// streamWait is how long Open waits for a cluster that cannot make the
// stream yet (its meta leader not elected).
const streamWait = 30 * time.Second

// Close disconnects and stops the embedded server, if any.
func (l *Ledger) Close() {
	if l.nc != nil {
		l.nc.Drain()
		l.nc.Close()
	}
	if l.srv != nil {
		l.srv.Shutdown()
		l.srv.WaitForShutdown()
	}
}

// Conn is the NATS connection, for readiness probes.
func (l *Ledger) Conn() *nats.Conn { return l.nc }

// Ping checks that the stream answers.
func (l *Ledger) Ping(ctx context.Context) error {
	_, err := l.stream.Info(ctx)
	return err
}

// LastSeq is the stream's last sequence now.
func (l *Ledger) LastSeq(ctx context.Context) (uint64, error) {
	// Bounded like a publish: a request the cluster drops (a server that
	// died with it) must not hold the caller for the caller's whole deadline.
	ctx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger: stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

func (l *Ledger) issuedSubject(issuer string, serial []byte) string {
	return l.cfg.Prefix + ".iss." + issuer + "." + SerialHex(serial)
}
func (l *Ledger) setSubject(issuer string, s serial.Set) string {
	return l.cfg.Prefix + ".set." + issuer + "." + s.Hex()
}
func (l *Ledger) revokedSubject(issuer string, serial []byte) string {
	return l.cfg.Prefix + ".rev." + issuer + "." + SerialHex(serial)
}
func (l *Ledger) batchSubject(tenant, key string, chunk int) string {
	return l.cfg.Prefix + ".batch." + tenant + "." + key + "." + strconv.Itoa(chunk)
}

// ttl keeps a record until notAfter plus the margin.
func (l *Ledger) ttl(notAfter int64) string {
	d := time.Until(unixTime(notAfter)) + l.cfg.RetentionMargin
	if d < time.Hour {
		d = time.Hour
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

func (l *Ledger) msg(subject, id string, r Record, notAfter int64) (*nats.Msg, error) {
	data, err := Encode(r)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Header.Set("Nats-TTL", l.ttl(notAfter))
	return m, nil
}

// pubAck is JetStream's answer to a publish or a batch commit.
type pubAck struct {
	Stream string    `json:"stream"`
	Seq    uint64    `json:"seq"`
	Batch  string    `json:"batch"`
	Count  int       `json:"count"`
	Dup    bool      `json:"duplicate"`
	Error  *APIError `json:"error"`
}

// JetStream error codes this package branches on.
const (
	errWrongLastSequence = 10071
	errBatchDuplicate    = 10201
	errDuplicateConflict = 10158
	errNoMessageFound    = 10037
)

// APIError is an error JetStream returned for a publish.
type APIError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("ledger: jetstream error %d: %s", e.ErrCode, e.Description)
}

// publishAtomic commits msgs as one atomic batch and returns the stream
// sequence of the first. Either every message is stored or none is.
func (l *Ledger) publishAtomic(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) == 0 || len(msgs) > MaxChunk {
		return 0, fmt.Errorf("ledger: atomic batch of %d messages, want 1..%d", len(msgs), MaxChunk)
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
	defer cancel()
	id := nuid.Next()
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			m.Header.Set("Nats-Batch-Commit", "1")
			break
		}
		if err := l.nc.PublishMsg(m); err != nil {
			return 0, fmt.Errorf("ledger: publish batch %s: %w", id, err)
		}
	}
	resp, err := l.nc.RequestMsgWithContext(ctx, msgs[len(msgs)-1])
	if err != nil {
		return 0, fmt.Errorf("ledger: commit batch %s of %d: %w", id, len(msgs), err)
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("ledger: commit batch %s: bad acknowledgement: %w", id, err)
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.Count != len(msgs) || ack.Seq < uint64(len(msgs)) {
		return 0, fmt.Errorf("ledger: commit batch %s: acknowledged %d of %d messages", id, ack.Count, len(msgs))
	}
	return ack.Seq - uint64(len(msgs)) + 1, nil
}

// ErrTooLarge: a record is larger than the server accepts; nothing of the
// chunk was stored, and the same chunk will never fit.
var ErrTooLarge = errors.New("ledger: record over the server's max_payload")

// SetSize is the most certificates a signer puts in one serial.Set, and so
// in one ledger message (one fsync): 999 certificates commit as 2 sets and
// a guard. A signer also keeps a set's records within SetBytes.
const SetSize = 512

// SetBytes is how many bytes of records a signer may plan for one set:
// three quarters of the server's max_payload (with the default 1 MiB,
// 768 KiB: 512 P-256 device certificates with a little metadata take about
// 400 KiB), so that an estimate a little short still fits.
func (l *Ledger) SetBytes() int { return int(l.nc.MaxPayload()) * 3 / 4 }

// Chunk is one atomic commit of issued certificates and their guard.
type Chunk struct {
	Guard  Batch
	Issued []Issued
}

// CommitChunk publishes the chunk's certificates, one message per serial
// set (see IssuedSet), and its guard as one atomic batch and waits for the
// acknowledgement. It returns ErrGuardExists if a guard for the same
// tenant, key and chunk was committed before, or a set with the same
// prefix exists (2^-63 per pair of sets; the caller retries with new
// serials); then nothing of this chunk was stored.
func (l *Ledger) CommitChunk(ctx context.Context, c Chunk) (firstSeq uint64, err error) {
	type group struct {
		set serial.Set
		rec IssuedSet
	}
	var groups []*group
	bySet := map[serial.Set]*group{}
	seen := make(map[string]bool, len(c.Issued))
	for i := range c.Issued {
		is := c.Issued[i]
		if !ValidName(is.Issuer) {
			return 0, fmt.Errorf("ledger: issuer name %q", is.Issuer)
		}
		if seen[is.Issuer+"/"+string(is.Serial)] {
			return 0, fmt.Errorf("ledger: serial %x twice in one chunk", is.Serial)
		}
		seen[is.Issuer+"/"+string(is.Serial)] = true
		set, ok := serial.SetOf(is.Serial)
		if !ok {
			return 0, fmt.Errorf("ledger: serial %x is not from a serial.Set", is.Serial)
		}
		g := bySet[set]
		if g == nil {
			g = &group{set: set, rec: IssuedSet{Issuer: is.Issuer, Set: set[:]}}
			bySet[set] = g
			groups = append(groups, g)
		}
		if g.rec.Issuer != is.Issuer {
			return 0, fmt.Errorf("ledger: serial set %s spans issuers %s and %s", set.Hex(), g.rec.Issuer, is.Issuer)
		}
		g.rec.Certs = append(g.rec.Certs, is)
	}
	if len(groups)+1 > MaxChunk {
		return 0, fmt.Errorf("ledger: chunk of %d serial sets, at most %d", len(groups), MaxChunk-1)
	}
	msgs := make([]*nats.Msg, 0, len(groups)+1)
	maxPayload := l.nc.MaxPayload()
	for _, g := range groups {
		var notAfter int64
		for _, is := range g.rec.Certs {
			notAfter = max(notAfter, is.NotAfter)
		}
		m, err := l.msg(l.setSubject(g.rec.Issuer, g.set), "set."+g.rec.Issuer+"."+g.set.Hex(), Record{Kind: KindIssuedSet, Set: &g.rec}, notAfter)
		if err != nil {
			return 0, err
		}
		if int64(len(m.Data))+4096 > maxPayload {
			return 0, fmt.Errorf("%w: serial set %s of %d certificates is %d bytes, over the server's max_payload %d: put fewer certificates in a set or raise max_payload", ErrTooLarge, g.set.Hex(), len(g.rec.Certs), len(m.Data), maxPayload)
		}
		// A set is written once: a second set with the same prefix would
		// hide the first from Lookup.
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		msgs = append(msgs, m)
	}
	g := c.Guard
	if !ValidName(g.Tenant) || g.Key == "" {
		return 0, fmt.Errorf("ledger: guard needs a tenant name and a key")
	}
	m, err := l.msg(l.batchSubject(g.Tenant, g.Key, g.Chunk), "batch."+g.Tenant+"."+g.Key+"."+strconv.Itoa(g.Chunk), Record{Kind: KindBatch, Batch: &g}, g.NotAfter)
	if err != nil {
		return 0, err
	}
	if int64(len(m.Data))+4096 > maxPayload {
		return 0, fmt.Errorf("%w: the guard of chunk %d (%d refusals) is %d bytes, over the server's max_payload %d", ErrTooLarge, g.Chunk, len(g.Refused), len(m.Data), maxPayload)
	}
	// Only the first guard for this key and chunk may be stored.
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	msgs = append(msgs, m)
	seq, err := l.publishAtomic(ctx, msgs)
	var api *APIError
	if errors.As(err, &api) && (api.ErrCode == errWrongLastSequence || api.ErrCode == errBatchDuplicate || api.ErrCode == errDuplicateConflict) {
		return 0, fmt.Errorf("%w: %v", ErrGuardExists, err)
	}
	return seq, err
}

// Revoke records a revocation once. If the certificate was revoked before,
// it returns the first revocation and already = true; the record is never
// replaced, so a revocation never changes its time or reason.
func (l *Ledger) Revoke(ctx context.Context, r Revoked) (first Revoked, already bool, err error) {
	if !ValidName(r.Issuer) || len(r.Serial) == 0 {
		return r, false, fmt.Errorf("ledger: revocation needs an issuer name and a serial")
	}
	m, err := l.msg(l.revokedSubject(r.Issuer, r.Serial), "rev."+r.Issuer+"."+SerialHex(r.Serial), Record{Kind: KindRevoked, Revoked: &r}, r.NotAfter)
	if err != nil {
		return r, false, err
	}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	_, err = l.publishAtomic(ctx, []*nats.Msg{m})
	var api *APIError
	if errors.As(err, &api) && (api.ErrCode == errWrongLastSequence || api.ErrCode == errBatchDuplicate || api.ErrCode == errDuplicateConflict) {
		prev, _, lerr := l.lastRecord(ctx, l.revokedSubject(r.Issuer, r.Serial))
		if lerr != nil {
			return r, false, lerr
		}
		return *prev.Revoked, true, nil
	}
	return r, false, err
}

func (l *Ledger) lastRecord(ctx context.Context, subject string) (Record, uint64, error) {
	// A direct get goes to any replica; one that is restarting may take the
	// request and never answer. Each attempt is bounded by AckTimeout and
	// the next may reach another replica.
	var raw *jetstream.RawStreamMsg
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, l.cfg.AckTimeout)
		raw, err = l.stream.GetLastMsgForSubject(actx, subject)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, 0, ErrNotFound
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("ledger: get %s: %w", subject, err)
	}
	r, err := Decode(raw.Data)
	return r, raw.Sequence, err
}

// Cert is what the ledger knows of one certificate.
type Cert struct {
	Issued  *Issued
	Revoked *Revoked // nil while good
}

// Lookup returns the issuance and revocation records of one serial, or
// ErrNotFound if it was never issued.
func (l *Ledger) Lookup(ctx context.Context, issuer string, sn *big.Int) (Cert, error) {
	if !ValidName(issuer) {
		return Cert{}, ErrNotFound
	}
	s := sn.Bytes()
	iss, err := l.issued(ctx, issuer, s, map[serial.Set]*IssuedSet{})
	if err != nil {
		return Cert{}, err
	}
	c := Cert{Issued: iss}
	rev, _, err := l.lastRecord(ctx, l.revokedSubject(issuer, s))
	switch {
	case err == nil:
		c.Revoked = rev.Revoked
	case !errors.Is(err, ErrNotFound):
		return Cert{}, err
	}
	return c, nil
}

// Certificates returns the issuance records of serials of one issuer, in
// order, reading each serial set once (a retried batch's answer).
func (l *Ledger) Certificates(ctx context.Context, issuer string, serials [][]byte) ([]*Issued, error) {
	if !ValidName(issuer) {
		return nil, ErrNotFound
	}
	sets := map[serial.Set]*IssuedSet{}
	out := make([]*Issued, len(serials))
	for i, s := range serials {
		is, err := l.issued(ctx, issuer, s, sets)
		if err != nil {
			return nil, fmt.Errorf("ledger: serial %x: %w", s, err)
		}
		out[i] = is
	}
	return out, nil
}

// issued finds one serial's issuance record: in its serial set's message,
// or on its own subject (records written before serial sets).
func (l *Ledger) issued(ctx context.Context, issuer string, s []byte, sets map[serial.Set]*IssuedSet) (*Issued, error) {
	if set, ok := serial.SetOf(s); ok {
		rec, seen := sets[set]
		if !seen {
			r, _, err := l.lastRecord(ctx, l.setSubject(issuer, set))
			switch {
			case err == nil && r.Kind == KindIssuedSet:
				rec = r.Set
			case err != nil && !errors.Is(err, ErrNotFound):
				return nil, err
			}
			sets[set] = rec
		}
		if rec != nil {
			for i := range rec.Certs {
				if bytes.Equal(rec.Certs[i].Serial, s) {
					return &rec.Certs[i], nil
				}
			}
		}
	}
	r, _, err := l.lastRecord(ctx, l.issuedSubject(issuer, s))
	if err != nil {
		return nil, err
	}
	if r.Kind != KindIssued {
		return nil, ErrNotFound
	}
	return r.Issued, nil
}

// Guard returns the guard of one chunk of an idempotent batch, or ErrNotFound.
func (l *Ledger) Guard(ctx context.Context, tenant, key string, chunk int) (*Batch, error) {
	if !ValidName(tenant) {
		return nil, ErrNotFound
	}
	r, _, err := l.lastRecord(ctx, l.batchSubject(tenant, key, chunk))
	if err != nil {
		return nil, err
	}
	return r.Batch, nil
}

// StreamLeader names the server that leads the stream (clusters), or "".
func (l *Ledger) StreamLeader(ctx context.Context) (string, error) {
	info, err := l.stream.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}
