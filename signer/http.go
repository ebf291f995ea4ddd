package signer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/certmill/certmill/pkg/fault"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/problem"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/pkg/tenant"
)

// handle routes a request. One event per request goes to the log.
func (s *Signer) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := string(ctx.Path())
	route := "other"
	defer func() {
		st := ctx.Response.StatusCode()
		s.m.requests.WithLabelValues(route, strconv.Itoa(st)).Inc()
		lvl := slog.LevelDebug
		if st >= 500 {
			lvl = slog.LevelWarn
		}
		s.log.Log(context.Background(), lvl, "signer: request", "method", string(ctx.Method()), "route", route,
			"status", st, "seconds", time.Since(start).Seconds(), "remote", ctx.RemoteIP().String())
	}()
	switch {
	case path == "/healthz":
		route = "healthz"
		ctx.SetBodyString("ok\n")
		return
	case path == "/readyz":
		route = "readyz"
		s.readyz(ctx)
		return
	case path == "/metrics":
		route = "metrics"
		s.m.metricsHTTP(ctx)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 2 || parts[0] != "v1" {
		s.fail(ctx, problem.New(problem.NotFound, 404, "no such endpoint: %s (the API lives under /v1)", path))
		return
	}
	authz := ctx.Request.Header.Peek("Authorization")
	t := s.tenants.Authenticate(authz)
	if t == nil {
		// RFC 6750 §3: no error code when no credentials came, invalid_token
		// when a token came and is not one of ours.
		if len(authz) == 0 {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="certmill"`)
			s.fail(ctx, problem.New(problem.Unauthorized, 401, "send Authorization: Bearer <your tenant token>"))
		} else {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="certmill", error="invalid_token"`)
			s.fail(ctx, problem.New(problem.Unauthorized, 401, "the Authorization header is not Bearer <token> with a token of a tenant: check the token your operator gave you"))
		}
		return
	}
	switch {
	case len(parts) == 6 && parts[1] == "issuers" && parts[3] == "profiles" && parts[5] == "batches":
		route = "batches"
		if !ctx.IsPost() {
			s.notAllowed(ctx, "POST")
			return
		}
		s.batch(ctx, t, parts[2], parts[4])
	case len(parts) == 2 && parts[1] == "certificates":
		route = "list"
		if !ctx.IsGet() && !ctx.IsHead() {
			s.notAllowed(ctx, "GET, HEAD")
			return
		}
		s.list(ctx, t)
	case len(parts) == 3 && parts[1] == "certificates":
		route = "certificate"
		if !ctx.IsGet() && !ctx.IsHead() {
			s.notAllowed(ctx, "GET, HEAD")
			return
		}
		s.lookup(ctx, t, parts[2])
	case len(parts) == 4 && parts[1] == "certificates" && parts[3] == "revoke":
		route = "revoke"
		if !ctx.IsPost() {
			s.notAllowed(ctx, "POST")
			return
		}
		s.revoke(ctx, t, parts[2])
	default:
		s.fail(ctx, problem.New(problem.NotFound, 404, "no such endpoint: %s", path))
	}
}

func (s *Signer) readyz(ctx *fasthttp.RequestCtx) {
	var errs []string
	if !s.ready.Load() {
		errs = append(errs, "not serving (starting or shutting down)")
	}
	if err := s.hsm.Ping(); err != nil {
		errs = append(errs, "hsm: "+err.Error())
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.ledger.Ping(c); err != nil {
		errs = append(errs, "ledger: "+err.Error())
	}
	if len(errs) > 0 {
		ctx.SetStatusCode(503)
		ctx.Response.Header.Set("Retry-After", "5")
		ctx.SetBodyString(strings.Join(errs, "\n") + "\n")
		return
	}
	ctx.SetBodyString("ready\n")
}

// fail writes a problem document.
func (s *Signer) fail(ctx *fasthttp.RequestCtx, p *problem.Problem) {
	s.m.problems.WithLabelValues(p.Name()).Inc()
	if p.Status == 503 && len(ctx.Response.Header.Peek("Retry-After")) == 0 {
		ctx.Response.Header.Set("Retry-After", "5")
	}
	ctx.SetStatusCode(p.Status)
	ctx.SetContentType(problem.ContentType)
	ctx.SetBody(p.JSON())
}

// notAllowed answers 405 with the Allow header RFC 9110 §15.5.6 requires.
func (s *Signer) notAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	s.fail(ctx, problem.New(problem.MethodNotAllowed, 405, "%s is not allowed here: use %s", ctx.Method(), allow))
}

// internal logs err and answers a problem without its detail.
func (s *Signer) internal(ctx *fasthttp.RequestCtx, what string, err error) {
	if errors.Is(err, hsm.ErrUnavailable) || errors.Is(err, hsm.ErrBusy) {
		s.log.Error("signer: HSM unavailable", "during", what, "err", err)
		s.fail(ctx, problem.New(problem.Unavailable, 503, "the HSM is unavailable; nothing was issued for this request, retry with the same Idempotency-Key"))
		return
	}
	if errors.Is(err, ledger.ErrTooLarge) {
		s.log.Error("signer: a ledger record is too large", "during", what, "err", err)
		s.fail(ctx, problem.New(problem.Internal, 500, "a ledger record of this batch is larger than the ledger accepts (nats-server max_payload); nothing was issued: send fewer CSRs or less metadata per batch, or ask the operator to raise max_payload"))
		return
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "ledger") {
		s.log.Error("signer: ledger unavailable", "during", what, "err", err)
		s.fail(ctx, problem.New(problem.Unavailable, 503, "the ledger did not acknowledge in time; retry with the same Idempotency-Key, which returns what was recorded"))
		return
	}
	s.log.Error("signer: internal error", "during", what, "err", err)
	s.fail(ctx, problem.New(problem.Internal, 500, "internal error while %s; the operator has the details", what))
}

func (s *Signer) transportError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.fail(ctx, problem.New(problem.TooLarge, 413, "the body is larger than %d bytes: split the batch", s.cfg.Limits.MaxBodyBytes))
	case strings.Contains(err.Error(), "timeout"):
		s.fail(ctx, problem.New(problem.Timeout, 408, "the request was not received within %s", s.cfg.Limits.ReadTimeout))
	default:
		s.fail(ctx, problem.New(problem.BadRequest, 400, "malformed HTTP request"))
	}
}

// Result is one CSR's outcome in a batch answer.
type Result struct {
	Index       int              `json:"index"`
	Serial      string           `json:"serial,omitempty"`
	Certificate string           `json:"certificate,omitempty"`
	Problem     *problem.Problem `json:"problem,omitempty"`
}

// BatchResponse is the answer to a batch.
type BatchResponse struct {
	BatchID  string   `json:"batch_id"`
	Issuer   string   `json:"issuer"`
	Profile  string   `json:"profile"`
	Issued   int      `json:"issued"`
	Failed   int      `json:"failed"`
	Replayed bool     `json:"replayed"` // true when a retry got what was recorded before
	Results  []Result `json:"results"`
	Chain    string   `json:"chain"` // the issuing CA's certificate, PEM
}

func (s *Signer) batch(ctx *fasthttp.RequestCtx, t *tenant.Tenant, issuerName, profName string) {
	is, ok := s.issuers[issuerName]
	if !ok || is.prof.Profiles[profName] == nil {
		s.fail(ctx, problem.New(problem.NotFound, 404, "no issuer %q with profile %q", issuerName, profName))
		return
	}
	if !t.Allowed(issuerName, profName) {
		s.fail(ctx, problem.New(problem.Forbidden, 403, "tenant %s may not use issuer %s profile %s", t.Name, issuerName, profName))
		return
	}
	if mt, _, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType())); err != nil || mt != "application/json" {
		s.fail(ctx, problem.New(problem.UnsupportedMedia, 415, "send the batch as application/json"))
		return
	}
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if key == "" || len(key) > 255 {
		s.fail(ctx, problem.New(problem.IdempotencyNeeded, 400, "send an Idempotency-Key header (1 to 255 characters) so that a retry cannot issue twice"))
		return
	}
	req, p := decodeBatch(ctx.PostBody(), s.cfg.Limits.MaxCSRs)
	if p != nil {
		s.fail(ctx, p)
		return
	}
	s.m.batchSize.Observe(float64(len(req.CSRs)))
	reqHash := sha256.Sum256(append([]byte(issuerName+"\x00"+profName+"\x00"), ctx.PostBody()...))
	bctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.BatchTimeout)
	defer cancel()
	resp, p, err := s.issueBatch(bctx, t, is, profName, key, reqHash[:], req)
	if p != nil {
		s.fail(ctx, p)
		return
	}
	if err != nil {
		s.internal(ctx, "issuing the batch", err)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		s.internal(ctx, "encoding the answer", err)
		return
	}
	ctx.SetContentType("application/json")
	if fault.Enabled {
		// The fault suite may kill the process with half the answer sent.
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			w.Write(b[:len(b)/2])
			w.Flush()
			fault.Point("signer.mid-answer")
			w.Write(b[len(b)/2:])
		})
		return
	}
	ctx.SetBody(b)
}

// decodeJSON decodes one JSON value with no unknown fields and nothing
// after it but white space.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the object")
	}
	return nil
}

// checkMetadata bounds metadata: what lists find certificates by.
func checkMetadata(md map[string]string, whose string) *problem.Problem {
	for k, v := range md {
		if len(k) > 64 || len(v) > 256 || k == "" {
			return problem.New(problem.BadRequest, 400, "%s metadata: keys 1 to 64 bytes, values at most 256", whose)
		}
		if !validMeta(k) || (v != "" && !validMeta(v)) {
			return problem.New(problem.BadRequest, 400, "%s metadata %q: no control characters in keys or values", whose, k)
		}
	}
	return nil
}

// decodeBatch parses and bounds a batch body.
func decodeBatch(body []byte, maxCSRs int) (*batchRequest, *problem.Problem) {
	var req batchRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, problem.New(problem.BadRequest, 400, "the body is not a batch: %v (want {\"csrs\": [{\"csr\": \"-----BEGIN CERTIFICATE REQUEST-----...\"}]})", err)
	}
	if len(req.CSRs) == 0 {
		return nil, problem.New(problem.BadRequest, 400, "the batch has no CSRs")
	}
	if len(req.CSRs) > maxCSRs {
		return nil, problem.New(problem.TooManyCSRs, 413, "%d CSRs, at most %d per batch: split it", len(req.CSRs), maxCSRs)
	}
	if len(req.Metadata) > 32 {
		return nil, problem.New(problem.BadRequest, 400, "at most 32 batch metadata entries")
	}
	if p := checkMetadata(req.Metadata, "the batch's"); p != nil {
		return nil, p
	}
	for i, c := range req.CSRs {
		if len(c.Metadata) > 32 {
			return nil, problem.New(problem.BadRequest, 400, "csrs[%d]: at most 32 metadata entries", i)
		}
		if p := checkMetadata(c.Metadata, fmt.Sprintf("csrs[%d]:", i)); p != nil {
			return nil, p
		}
	}
	return &req, nil
}

// maxRefusalDetail bounds a refused CSR's detail, in the answer and in
// the guard that replays it: 999 refusals stay far below max_payload.
const maxRefusalDetail = 400

// chunkSize is how many certificates commit with one guard.
const chunkSize = ledger.MaxChunk - 1

// issueBatch issues or replays each chunk of the batch.
func (s *Signer) issueBatch(ctx context.Context, t *tenant.Tenant, is *issuer, profName, key string, reqHash []byte, req *batchRequest) (*BatchResponse, *problem.Problem, error) {
	kh := ledger.KeyHash(t.Name, is.name, profName, key)
	n := len(req.CSRs)
	chunks := (n + chunkSize - 1) / chunkSize
	resp := &BatchResponse{BatchID: kh, Issuer: is.name, Profile: profName, Results: make([]Result, n),
		Chain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.cert.Raw}))}
	for i := range resp.Results {
		resp.Results[i].Index = i
	}
	// Every CSR is parsed and checked first; checks are deterministic, so
	// a retry finds the same problems for the same CSRs.
	csrs := make([]*x509.CertificateRequest, n)
	probs := make([]*problem.Problem, n)
	if err := s.parallel(ctx, 0, n, func(i int) { csrs[i], probs[i] = parseCSR(req.CSRs[i].CSR) }); err != nil {
		return nil, nil, err
	}
	seen := make(map[string]int, n)
	for i, csr := range csrs {
		p := probs[i]
		if p == nil {
			id := publicKeyID(csr.PublicKey)
			if j, dup := seen[id]; dup {
				p = problem.New(problem.DuplicateKey, 422, "the same public key as csrs[%d]: every device needs its own key", j)
			} else {
				seen[id] = i
			}
		}
		if p != nil {
			ix := i
			p.Index = &ix
			resp.Results[i].Problem = p
			csrs[i] = nil
		}
	}
	job := &batchJob{t: t, is: is, profName: profName, key: key, kh: kh, reqHash: reqHash, req: req, csrs: csrs, resp: resp, chunks: chunks, now: time.Now()}
	for c := range chunks {
		lo, hi := c*chunkSize, min((c+1)*chunkSize, n)
		g, err := s.ledger.Guard(ctx, t.Name, kh, c)
		if err == nil {
			if p := s.replay(ctx, is, g, reqHash, resp); p != nil {
				return nil, p, nil
			}
			resp.Replayed = true
			continue
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return nil, nil, err
		}
		chunk, err := s.signChunk(ctx, job, c, lo, hi)
		if err != nil {
			return nil, nil, err
		}
		fault.Point("signer.after-sign") // signed by the HSM, not yet in the ledger
		t0 := time.Now()
		_, err = s.ledger.CommitChunk(ctx, chunk)
		s.m.ackSeconds.Observe(time.Since(t0).Seconds())
		if errors.Is(err, ledger.ErrGuardExists) {
			// A concurrent request with the same key won: answer with its certificates.
			for i := lo; i < hi; i++ {
				resp.Results[i].Serial, resp.Results[i].Certificate = "", ""
			}
			g, gerr := s.ledger.Guard(ctx, t.Name, kh, c)
			if gerr != nil {
				return nil, nil, gerr
			}
			if p := s.replay(ctx, is, g, reqHash, resp); p != nil {
				return nil, p, nil
			}
			resp.Replayed = true
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		fault.Point("signer.after-ack") // in the ledger, the caller has nothing yet
		s.m.issued.WithLabelValues(is.name, "new").Add(float64(len(chunk.Issued)))
	}
	for _, r := range resp.Results {
		if r.Problem != nil {
			resp.Failed++
		} else if r.Certificate != "" {
			resp.Issued++
		}
	}
	return resp, nil, nil
}

// replay fills resp with the certificates a guard records.
func (s *Signer) replay(ctx context.Context, is *issuer, g *ledger.Batch, reqHash []byte, resp *BatchResponse) *problem.Problem {
	if !bytes.Equal(g.RequestHash, reqHash) {
		return problem.New(problem.IdempotencyReused, 422, "this Idempotency-Key was used for a different request: use a new key for new CSRs")
	}
	certs, err := s.ledger.Certificates(ctx, is.name, g.Serials)
	if err != nil || len(certs) != len(g.Indexes) {
		s.log.Error("signer: a recorded certificate of a batch cannot be read back", "issuer", is.name, "batch", g.BatchID, "chunk", g.Chunk, "err", err)
		return problem.New(problem.Internal, 500, "a recorded certificate of this batch cannot be read back; the operator must check the ledger")
	}
	for _, r := range g.Refused {
		if r.Index < 0 || r.Index >= len(resp.Results) {
			return problem.New(problem.Internal, 500, "a recorded answer of this batch cannot be read back; the operator must check the ledger")
		}
		p := problem.New(r.Type, r.Status, "%s", r.Detail)
		p.Index = &r.Index
		resp.Results[r.Index].Problem = p
	}
	for k, ix := range g.Indexes {
		if ix < 0 || ix >= len(resp.Results) {
			return problem.New(problem.Internal, 500, "a recorded certificate of this batch cannot be read back; the operator must check the ledger")
		}
		resp.Results[ix].Serial = serial.Hex(new(big.Int).SetBytes(g.Serials[k]))
		resp.Results[ix].Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[k].DER}))
		resp.Results[ix].Problem = nil
	}
	s.m.issued.WithLabelValues(is.name, "replayed").Add(float64(len(g.Indexes)))
	return nil
}

// batchJob is one batch being issued. Its certificates share one issuance
// time, so those of one shape share one lint verdict across chunks.
type batchJob struct {
	t        *tenant.Tenant
	is       *issuer
	profName string
	key, kh  string
	reqHash  []byte
	req      *batchRequest
	csrs     []*x509.CertificateRequest
	resp     *BatchResponse
	chunks   int
	now      time.Time
	shapes   shapeVerdicts
}

// signChunk issues the good CSRs of [lo, hi) in parallel.
func (s *Signer) signChunk(ctx context.Context, j *batchJob, c, lo, hi int) (ledger.Chunk, error) {
	t, is, profName, key, kh, req, csrs, resp, now := j.t, j.is, j.profName, j.key, j.kh, j.req, j.csrs, j.resp, j.now
	issued := make([]*ledger.Issued, hi-lo)
	// Consecutive CSRs share a serial set, up to ledger.SetSize of them and
	// as many as fit in ledger.SetBytes by their estimated records: one
	// ledger message (one fsync) each, found again from any of its serials.
	setOf := make([]int, hi-lo)
	n, count, size, budget := 0, 0, 0, s.ledger.SetBytes()
	for i := lo; i < hi; i++ {
		if csrs[i] == nil {
			continue
		}
		est := recordEstimate(is, csrs[i], req.Metadata, req.CSRs[i].Metadata)
		if count == ledger.SetSize || count > 0 && size+est > budget {
			n, count, size = n+1, 0, 0
		}
		setOf[i-lo] = n
		count, size = count+1, size+est
	}
	sets := make([]serial.Set, n+1)
	for k := range sets {
		var err error
		if sets[k], err = serial.NewSet(); err != nil {
			return ledger.Chunk{}, err
		}
	}
	var mu sync.Mutex
	var firstErr error
	err := s.parallel(ctx, lo, hi, func(i int) {
		if csrs[i] == nil {
			return
		}
		t0 := time.Now()
		der, cert, p, err := s.issueOne(is, profName, csrs[i], sets[setOf[i-lo]], &j.shapes, now)
		s.m.csrSeconds.Observe(time.Since(t0).Seconds())
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return
		}
		if p != nil {
			ix := i
			p.Index = &ix
			resp.Results[i].Problem = p
			return
		}
		md := map[string]string{}
		for k, v := range req.Metadata {
			md[k] = v
		}
		for k, v := range req.CSRs[i].Metadata {
			md[k] = v
		}
		issued[i-lo] = &ledger.Issued{
			Issuer: is.name, Serial: cert.SerialNumber.Bytes(), NotBefore: cert.NotBefore.Unix(), NotAfter: cert.NotAfter.Unix(),
			DER: der, Tenant: t.Name, Profile: profName, BatchID: kh, IdempotencyKey: key, Index: i, Metadata: md, IssuedAt: now.UnixNano(),
		}
		resp.Results[i].Serial = serial.Hex(cert.SerialNumber)
		resp.Results[i].Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	})
	if err != nil {
		return ledger.Chunk{}, err
	}
	if firstErr != nil {
		return ledger.Chunk{}, firstErr
	}
	ch := ledger.Chunk{Guard: ledger.Batch{Tenant: t.Name, Issuer: is.name, Profile: profName, Key: kh, RequestHash: j.reqHash,
		BatchID: kh, Chunk: c, Chunks: j.chunks, Time: now.UnixNano(), NotAfter: now.Add(24 * time.Hour).Unix()}}
	for i := lo; i < hi; i++ {
		if p := resp.Results[i].Problem; p != nil {
			if len(p.Detail) > maxRefusalDetail {
				p.Detail = strings.ToValidUTF8(p.Detail[:maxRefusalDetail], "") + "..."
			}
			ch.Guard.Refused = append(ch.Guard.Refused, ledger.Refusal{Index: i, Type: p.Name(), Status: p.Status, Detail: p.Detail})
		}
	}
	for _, x := range issued {
		if x == nil {
			continue
		}
		ch.Issued = append(ch.Issued, *x)
		ch.Guard.Indexes = append(ch.Guard.Indexes, x.Index)
		ch.Guard.Serials = append(ch.Guard.Serials, x.Serial)
		ch.Guard.NotAfter = max(ch.Guard.NotAfter, x.NotAfter)
	}
	return ch, nil
}

// recordEstimate is an upper estimate of the ledger record of the
// certificate for csr: the CSR (subject, key, names, its own signature),
// the issuer's certificate (a CA certificate's name, extensions and
// signature bound what the profile adds), the metadata and the record's
// fields.
func recordEstimate(is *issuer, csr *x509.CertificateRequest, batchMD, csrMD map[string]string) int {
	n := len(csr.Raw) + len(is.cert.Raw) + 256
	for _, md := range []map[string]string{batchMD, csrMD} {
		for k, v := range md {
			n += len(k) + len(v) + 8
		}
	}
	return n
}

// parallel runs f(i) for every i in [lo, hi) on the signer's worker slots
// and returns when all have ended. Its goroutines live for the whole
// range, so that their stacks grow once (x509 and ECDSA are deep), and
// take a slot per item, so that concurrent batches share the slots.
func (s *Signer) parallel(ctx context.Context, lo, hi int, f func(i int)) error {
	var next atomic.Int64
	next.Store(int64(lo))
	var wg sync.WaitGroup
	for range min(cap(s.work), hi-lo) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < hi; i = int(next.Add(1) - 1) {
				select {
				case s.work <- struct{}{}:
				case <-ctx.Done():
					return
				}
				f(i)
				<-s.work
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// CertificateJSON is the JSON view of a certificate.
type CertificateJSON struct {
	Serial         string            `json:"serial"`
	Issuer         string            `json:"issuer"`
	Profile        string            `json:"profile"`
	Tenant         string            `json:"tenant"`
	BatchID        string            `json:"batch_id,omitempty"`
	Index          int               `json:"index"`
	NotBefore      time.Time         `json:"not_before"`
	NotAfter       time.Time         `json:"not_after"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Status         string            `json:"status"` // good or revoked
	RevokedAt      *time.Time        `json:"revoked_at,omitempty"`
	Reason         string            `json:"reason,omitempty"`
	InvalidityDate *time.Time        `json:"invalidity_date,omitempty"`
	Certificate    string            `json:"certificate,omitempty"` // PEM; not in listings
}

// find looks a serial up in every issuer the tenant may use. A certificate
// of another tenant is reported as not found.
func (s *Signer) find(t *tenant.Tenant, serialText string) (ledger.Cert, *problem.Problem, error) {
	sn, err := serial.Parse(serialText)
	if err != nil {
		return ledger.Cert{}, problem.New(problem.BadRequest, 400, "%v", err), nil
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name := range s.issuers {
		if !t.MayUseIssuer(name) {
			continue
		}
		cert, err := s.ledger.Lookup(c, name, sn)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return ledger.Cert{}, nil, err
		}
		if cert.Issued.Tenant != t.Name {
			break
		}
		return cert, nil, nil
	}
	return ledger.Cert{}, problem.New(problem.NotFound, 404, "no certificate with serial %s for tenant %s", serial.Hex(sn), t.Name), nil
}

// findOrFail is find that answers the problem itself; ok is false then.
func (s *Signer) findOrFail(ctx *fasthttp.RequestCtx, t *tenant.Tenant, serialText string) (ledger.Cert, bool) {
	cert, p, err := s.find(t, serialText)
	if p != nil {
		s.fail(ctx, p)
		return cert, false
	}
	if err != nil {
		s.internal(ctx, "looking up the certificate", err)
		return cert, false
	}
	return cert, true
}

func (s *Signer) lookup(ctx *fasthttp.RequestCtx, t *tenant.Tenant, serialText string) {
	cert, ok := s.findOrFail(ctx, t, serialText)
	if !ok {
		return
	}
	ctx.Response.Header.Set("Vary", "Accept")
	switch negotiate(string(ctx.Request.Header.Peek("Accept"))) {
	case "application/pkix-cert":
		ctx.SetContentType("application/pkix-cert")
		ctx.SetBody(cert.Issued.DER)
	case "application/x-pem-file":
		ctx.SetContentType("application/x-pem-file")
		ctx.SetBody(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Issued.DER}))
	default:
		b, _ := json.Marshal(certJSON(cert))
		ctx.SetContentType("application/json")
		ctx.SetBody(b)
	}
}

// negotiate picks the form of a certificate from an Accept header (RFC
// 9110 §12.5.1): the supported type with the highest q, the first named
// on a tie (a named type before a wildcard), JSON when none is named.
func negotiate(accept string) string {
	best, bestQ, bestWild := "application/json", -1.0, true
	for _, r := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		wild := false
		switch mt {
		case "application/json", "application/pkix-cert", "application/x-pem-file":
		case "application/pem-certificate-chain":
			mt = "application/x-pem-file"
		case "*/*", "application/*":
			mt, wild = "application/json", true
		default:
			continue
		}
		if q > bestQ || q == bestQ && bestWild && !wild {
			best, bestQ, bestWild = mt, q, wild
		}
	}
	if bestQ == 0 {
		return "application/json"
	}
	return best
}

func certJSON(c ledger.Cert) CertificateJSON {
	is := c.Issued
	j := CertificateJSON{Serial: serial.Hex(new(big.Int).SetBytes(is.Serial)), Issuer: is.Issuer, Profile: is.Profile, Tenant: is.Tenant,
		BatchID: is.BatchID, Index: is.Index, NotBefore: time.Unix(is.NotBefore, 0).UTC(), NotAfter: time.Unix(is.NotAfter, 0).UTC(),
		Metadata: is.Metadata, Status: "good", Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.DER}))}
	if r := c.Revoked; r != nil {
		j.revoked(r.Time, r.Reason, r.InvalidityDate)
	}
	return j
}

// revoked marks j revoked at (Unix nanoseconds) for an RFC 5280 reason,
// with an invalidity date in Unix seconds (0 for none).
func (j *CertificateJSON) revoked(at int64, reason int, invalidity int64) {
	j.Status = "revoked"
	t := time.Unix(0, at).UTC()
	j.RevokedAt = &t
	j.Reason = ReasonName(reason)
	if invalidity != 0 {
		d := time.Unix(invalidity, 0).UTC()
		j.InvalidityDate = &d
	}
}

// crlReasons are RFC 5280 §5.3.1's CRLReason names by code ("" for 7,
// which is not used).
var crlReasons = [...]string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
	"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}

// refusedReasons says why the codes a device's certificate is not revoked
// for are refused.
var refusedReasons = map[int]string{
	2:  "cACompromise (2) applies to a CA certificate, not to a device's",
	6:  "certificateHold (6) is refused: a revoked certificate never goes back to good",
	7:  "7 is not used in RFC 5280",
	8:  "removeFromCRL (8) only appears in delta CRLs",
	10: "aACompromise (10) applies to attribute authorities",
}

// ReasonName is the RFC 5280 name of a CRLReason code.
func ReasonName(code int) string {
	if code >= 0 && code < len(crlReasons) && crlReasons[code] != "" {
		return crlReasons[code]
	}
	return strconv.Itoa(code)
}

type revokeRequest struct {
	// Reason is an RFC 5280 CRLReason by name ("keyCompromise") or code
	// (1); absent means unspecified.
	Reason         json.RawMessage `json:"reason,omitempty"`
	InvalidityDate *time.Time      `json:"invalidity_date,omitempty"`
}

// reasonCode reads a revocation reason given by name or by code.
func reasonCode(raw json.RawMessage) (int, *problem.Problem) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var name string
	code := -1
	if json.Unmarshal(raw, &name) == nil {
		if name != "" {
			code = slices.Index(crlReasons[:], name)
		}
	} else if err := json.Unmarshal(raw, &code); err != nil {
		return 0, problem.New(problem.BadReason, 400, "reason %s: give a name or an RFC 5280 code, one of %s", raw, reasonList())
	}
	if why, refused := refusedReasons[code]; refused {
		return 0, problem.New(problem.BadReason, 400, "reason %s: %s; use one of %s", raw, why, reasonList())
	}
	if code < 0 || code >= len(crlReasons) {
		return 0, problem.New(problem.BadReason, 400, "reason %s is not an RFC 5280 reason: use one of %s", raw, reasonList())
	}
	return code, nil
}

// reasonList names the accepted reasons with their codes, in code order.
func reasonList() string {
	var out []string
	for c, n := range crlReasons {
		if _, refused := refusedReasons[c]; n != "" && !refused {
			out = append(out, fmt.Sprintf("%s (%d)", n, c))
		}
	}
	return strings.Join(out, ", ")
}

func (s *Signer) revoke(ctx *fasthttp.RequestCtx, t *tenant.Tenant, serialText string) {
	if mt, _, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType())); err != nil || mt != "application/json" {
		s.fail(ctx, problem.New(problem.UnsupportedMedia, 415, "send the revocation as application/json"))
		return
	}
	var req revokeRequest
	if err := decodeJSON(ctx.PostBody(), &req); err != nil {
		s.fail(ctx, problem.New(problem.BadRequest, 400, "the body is not a revocation: %v (want {\"reason\": \"keyCompromise\"})", err))
		return
	}
	code, p := reasonCode(req.Reason)
	if p != nil {
		s.fail(ctx, p)
		return
	}
	if d := req.InvalidityDate; d != nil && d.After(time.Now().Add(5*time.Minute)) {
		s.fail(ctx, problem.New(problem.BadRequest, 400, "invalidity_date %s is in the future: give when the key was or may have been compromised", d.UTC().Format(time.RFC3339)))
		return
	}
	cert, ok := s.findOrFail(ctx, t, serialText)
	if !ok {
		return
	}
	r := ledger.Revoked{Issuer: cert.Issued.Issuer, Serial: cert.Issued.Serial, Time: time.Now().UnixNano(), Reason: code,
		Tenant: t.Name, NotAfter: cert.Issued.NotAfter}
	if req.InvalidityDate != nil {
		r.InvalidityDate = req.InvalidityDate.Unix()
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(context.Background()), 10*time.Second)
	defer cancel()
	first, _, err := s.ledger.Revoke(c, r)
	if err != nil {
		s.internal(ctx, "recording the revocation", err)
		return
	}
	cert.Revoked = &first
	b, _ := json.Marshal(certJSON(cert))
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
