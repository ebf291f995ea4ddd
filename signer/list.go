package signer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/problem"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/pkg/tenant"
)

// ListResponse is the answer to GET /v1/certificates: one page.
type ListResponse struct {
	Certificates []CertificateJSON `json:"certificates"`
	// Next is the after= of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
	// AppliedSeq is the ledger sequence the index had applied: every
	// certificate acknowledged before the request is in the answer.
	AppliedSeq uint64 `json:"applied_seq"`
}

// list answers GET /v1/certificates?batch_id=... or ?metadata.<key>=<value>
// (several metadata filters must all match), with limit (1 to 1,000,
// default 100) and after (the previous page's next).
func (s *Signer) list(ctx *fasthttp.RequestCtx, t *tenant.Tenant) {
	if s.index == nil {
		s.fail(ctx, problem.New(problem.Unavailable, 501, "listing is off on this signer: its configuration has no index.dir"))
		return
	}
	var f listFilter
	limit := 100
	var after []byte
	var bad *problem.Problem
	ctx.QueryArgs().VisitAll(func(k, v []byte) {
		key, val := string(k), string(v)
		switch {
		case key == "batch_id":
			f.batchID = val
		case strings.HasPrefix(key, "metadata."):
			f.meta = append(f.meta, [2]string{strings.TrimPrefix(key, "metadata."), val})
		case key == "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1000 {
				bad = problem.New(problem.BadRequest, 400, "limit=%q: a number from 1 to 1000", val)
			}
			limit = n
		case key == "after":
			b, err := base64.RawURLEncoding.DecodeString(val)
			if err != nil || len(b) == 0 || len(b) > 128 {
				bad = problem.New(problem.BadRequest, 400, "after=%q is not a cursor: pass the next value of the previous page", val)
			}
			after = b
		default:
			bad = problem.New(problem.BadRequest, 400, "unknown parameter %q (batch_id, metadata.<key>, limit, after)", key)
		}
	})
	if bad == nil && f.batchID == "" && len(f.meta) == 0 {
		bad = problem.New(problem.BadRequest, 400, "name what to list: batch_id=<id> or metadata.<key>=<value> (device_id, product_line, ...)")
	}
	for _, kv := range f.meta {
		if !validMeta(kv[0]) || !validMeta(kv[1]) {
			bad = problem.New(problem.BadRequest, 400, "metadata.%s: keys and values without control characters, not empty", kv[0])
		}
	}
	if bad != nil {
		s.fail(ctx, bad)
		return
	}
	sort.Slice(f.meta, func(i, j int) bool { return f.meta[i][0] < f.meta[j][0] })
	if f.batchID == "" {
		f.walk = -1
		for i, kv := range f.meta {
			if s.index.keys[kv[0]] {
				f.walk = i
				break
			}
		}
		if f.walk < 0 {
			s.fail(ctx, problem.New(problem.BadRequest, 400, "no indexed metadata among the filters: start from batch_id or one of %s (index.metadata_keys)", strings.Join(s.cfg.Index.MetadataKeys, ", ")))
			return
		}
	}

	// Read your writes: wait until the index holds what the ledger had
	// when the request came.
	rctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.ListWait)
	defer cancel()
	want, err := s.ledger.LastSeq(rctx)
	if err != nil {
		s.internal(ctx, "reading the ledger's last sequence", err)
		return
	}
	for s.index.applied.Load() < want {
		select {
		case <-rctx.Done():
			ctx.Response.Header.Set("Retry-After", "1")
			s.fail(ctx, problem.New(problem.Unavailable, 503, "the listing index is behind the ledger (at %d of %d): retry in a second", s.index.applied.Load(), want))
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	es, next, err := s.index.list(t.Name, f, after, limit)
	if err != nil {
		s.internal(ctx, "reading the listing index", err)
		return
	}
	resp := ListResponse{Certificates: make([]CertificateJSON, 0, len(es)), AppliedSeq: s.index.applied.Load()}
	for i := range es {
		resp.Certificates = append(resp.Certificates, entryJSON(&es[i]))
	}
	if next != nil {
		resp.Next = base64.RawURLEncoding.EncodeToString(next)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		s.internal(ctx, "encoding the answer", err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// entryJSON is a listed certificate: what CertificateJSON says, but the
// certificate itself (GET /v1/certificates/{serial} has it).
func entryJSON(e *indexEntry) CertificateJSON {
	j := CertificateJSON{Serial: serial.Hex(new(big.Int).SetBytes(e.Serial)), Issuer: e.Issuer, Profile: e.Profile, Tenant: e.Tenant,
		BatchID: e.BatchID, Index: e.Index, NotBefore: time.Unix(e.NotBefore, 0).UTC(), NotAfter: time.Unix(e.NotAfter, 0).UTC(),
		Metadata: e.Metadata, Status: "good"}
	if e.RevokedAt != 0 {
		j.revoked(e.RevokedAt, e.Reason, e.Invalid)
	}
	return j
}

// follow keeps the index applied from the ledger until ctx ends.
func (s *Signer) follow(ctx context.Context) {
	s.ledger.Follow(ctx, s.index.lastSeq, s.index, ledger.FollowOptions{
		Failed: func(err error, retryIn time.Duration) {
			s.log.Warn("signer: the listing index stopped applying the ledger", "err", err, "retry_in", retryIn.String())
		},
	})
}
