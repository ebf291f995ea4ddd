package crlgen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/service"
)

// origin serves CRLs and CA certificates with the headers a CDN needs:
// ETag, Last-Modified, Cache-Control and Expires, and 304 answers to
// conditional requests.
//
// Caching: a full CRL may be kept up to full_every and a delta up to
// delta_every (so that edges and clients pick up the scheduled ones), a
// delta on a shared cache (CDN edge) up to edgeMaxAge (a delta follows a
// revocation within the debounce), never past nextUpdate; stale-if-error
// (RFC 5861) lets a cache serve either on an origin error until nextUpdate.
type origin struct {
	g     *Generator
	mu    sync.Mutex
	cache map[string]*object // by path
	gen   uint64             // bumped by invalidate: lookup caches only what it read in one generation
	srv   *fasthttp.Server
	addr  net.Addr
	// metrics serves the runtime's and the process's collectors.
	metrics fasthttp.RequestHandler
	// afterRead, for tests, runs in lookup between reading the store and
	// caching what it read.
	afterRead func()
}

type object struct {
	body    []byte
	ctype   string
	etag    string
	lastMod time.Time
	expires time.Time     // zero: no expiry (certificates); a CRL's nextUpdate
	maxAge  time.Duration // zero: up to expires
	sMaxAge time.Duration // zero: as maxAge
}

// edgeMaxAge is how long a shared cache (CDN edge) may keep a delta CRL.
const edgeMaxAge = time.Minute

func newOrigin(g *Generator) *origin {
	reg := g.d.Registry
	if reg == nil {
		reg = service.NewRegistry()
	}
	o := &origin{g: g, cache: map[string]*object{}, metrics: service.MetricsHandler(reg)}
	o.srv = &fasthttp.Server{
		Name: "certmill-crlgen", Handler: o.handle, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 60 * time.Second, MaxRequestBodySize: 4 << 10, NoDefaultServerHeader: true,
	}
	return o
}

func (o *origin) invalidate(issuer string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gen++
	delete(o.cache, "/"+issuer+".crl")
	delete(o.cache, "/"+issuer+"-delta.crl")
}

func newObject(body []byte, ctype string, lastMod, expires time.Time) *object {
	h := sha256.Sum256(body)
	return &object{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(h[:16]) + `"`, lastMod: lastMod.UTC(), expires: expires}
}

// lookup finds what a path names.
func (o *origin) lookup(path string) (*object, error) {
	o.mu.Lock()
	obj, gen := o.cache[path], o.gen
	o.mu.Unlock()
	if obj != nil {
		return obj, nil
	}
	name := strings.TrimPrefix(path, "/")
	switch {
	case (name == "root.crl" || name == "root.crt") && o.g.cfg.RootDir != "":
		b, err := os.ReadFile(filepath.Join(o.g.cfg.RootDir, name))
		if err != nil {
			return nil, nil
		}
		st, _ := os.Stat(filepath.Join(o.g.cfg.RootDir, name))
		ctype := "application/pkix-cert"
		if strings.HasSuffix(name, ".crl") {
			ctype = "application/pkix-crl"
		}
		return newObject(b, ctype, st.ModTime(), time.Time{}), nil // not cached: a ceremony may replace it
	case strings.HasSuffix(name, ".crt"):
		is := o.g.issuers[strings.TrimSuffix(name, ".crt")]
		if is == nil {
			return nil, nil
		}
		obj = newObject(is.cert.Raw, "application/pkix-cert", is.cert.NotBefore, time.Time{})
	case strings.HasSuffix(name, "-delta.crl") || strings.HasSuffix(name, ".crl"):
		kind, iss := Full, strings.TrimSuffix(name, ".crl")
		if strings.HasSuffix(name, "-delta.crl") {
			kind, iss = Delta, strings.TrimSuffix(name, "-delta.crl")
		}
		if o.g.issuers[iss] == nil {
			return nil, nil
		}
		p, err := o.g.st.getPublished(iss, string(kind))
		if err != nil || p == nil {
			return nil, err
		}
		obj = newObject(p.DER, "application/pkix-crl", time.Unix(p.ThisUpdate, 0), time.Unix(p.NextUpdate, 0))
		obj.maxAge = o.g.cfg.FullEvery
		if kind == Delta {
			obj.maxAge, obj.sMaxAge = o.g.cfg.DeltaEvery, edgeMaxAge
		}
	default:
		return nil, nil
	}
	if o.afterRead != nil {
		o.afterRead()
	}
	o.mu.Lock()
	if o.gen == gen { // else Build published since the read: obj may be replaced
		o.cache[path] = obj
	}
	o.mu.Unlock()
	return obj, nil
}

func (o *origin) handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/healthz":
		ctx.SetBodyString("ok\n")
		return
	case "/metrics":
		o.metrics(ctx)
		return
	case "/readyz":
		// The last applied ledger sequence, for monitoring the lag.
		seq, _ := o.g.st.lastSeq()
		ctx.Response.Header.Set("Certmill-Applied-Seq", strconv.FormatUint(seq, 10))
		select {
		case <-o.g.caught:
			ctx.SetBodyString("ready\n")
		default:
			ctx.SetStatusCode(503)
			ctx.SetBodyString("catching up with the ledger\n")
		}
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed: use GET or HEAD\n", 405)
		ctx.Response.Header.Set("Allow", "GET, HEAD") // after Error, which resets the response
		return
	}
	obj, err := o.lookup(string(ctx.Path()))
	if err != nil {
		o.g.log.Error("crlgen: read store", "err", err)
		ctx.Error("internal error\n", 500)
		return
	}
	if obj == nil {
		ctx.Error("not found: CRLs are at /<issuer>.crl and /<issuer>-delta.crl\n", 404)
		return
	}
	now := o.g.d.Now()
	h := &ctx.Response.Header
	h.Set("ETag", obj.etag)
	h.Set("Last-Modified", obj.lastMod.Format(time.RFC1123[:len(time.RFC1123)-3]+"GMT"))
	if obj.expires.IsZero() {
		h.Set("Cache-Control", "public, max-age=3600")
	} else {
		// Cached copies must not outlive nextUpdate.
		valid := max(int(obj.expires.Sub(now).Seconds()), 0)
		age := valid
		if obj.maxAge > 0 {
			age = min(age, int(obj.maxAge.Seconds()))
		}
		cc := "public, max-age=" + strconv.Itoa(age)
		if obj.sMaxAge > 0 {
			cc += ", s-maxage=" + strconv.Itoa(min(age, int(obj.sMaxAge.Seconds())))
		}
		if valid > age {
			cc += ", stale-if-error=" + strconv.Itoa(valid-age)
		}
		h.Set("Cache-Control", cc+", no-transform")
		h.Set("Expires", now.Add(time.Duration(age)*time.Second).UTC().Format(time.RFC1123[:len(time.RFC1123)-3]+"GMT"))
	}
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 {
		if etagMatch(string(inm), obj.etag) {
			ctx.SetStatusCode(304)
			return
		}
	} else if ims := ctx.Request.Header.Peek("If-Modified-Since"); len(ims) > 0 {
		// Only Last-Modified itself (RFC 9110 §13.1.3 allows an exact
		// match): thisUpdate is taken before the CRL is signed and
		// published, so a client's later date (when it fetched the one
		// before) is no proof that it holds this one.
		if t, err := time.Parse(time.RFC1123[:len(time.RFC1123)-3]+"GMT", string(ims)); err == nil && obj.lastMod.Truncate(time.Second).Equal(t) {
			ctx.SetStatusCode(304)
			return
		}
	}
	h.SetContentType(obj.ctype)
	if ctx.IsHead() {
		h.SetContentLength(len(obj.body))
		ctx.Response.SkipBody = true
		return
	}
	ctx.SetBody(obj.body)
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// Addr is the origin's address once Run listens.
func (g *Generator) Addr() net.Addr {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	return g.srv.addr
}

// notifier wraps the store to signal new revocations.
type notifier struct {
	*store
	changed chan struct{}
}

func (n notifier) Apply(es []ledger.Entry, last uint64) error {
	if err := n.store.Apply(es, last); err != nil {
		return err
	}
	for _, e := range es {
		if e.Err == nil && e.Record.Kind == ledger.KindRevoked {
			select {
			case n.changed <- struct{}{}:
			default:
			}
			break
		}
	}
	return nil
}

// Run consumes the ledger, issues CRLs on schedule and after revocations,
// and serves them, until ctx ends.
func (g *Generator) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("crlgen: listen: %w", err)
	}
	g.srv.mu.Lock()
	g.srv.addr = ln.Addr()
	g.srv.mu.Unlock()
	errc := make(chan error, 3)
	go func() { errc <- g.srv.srv.Serve(ln) }()
	from, err := g.st.lastSeq()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var caughtOnce sync.Once
	go g.ledger.Follow(cctx, g.st.lastSeq, notifier{g.st, g.changed}, ledger.FollowOptions{
		ConsumeOptions: ledger.ConsumeOptions{CaughtUp: func(uint64) { caughtOnce.Do(func() { close(g.caught) }) }},
		Failed: func(err error, retryIn time.Duration) {
			// CRLs already published stay valid until their nextUpdate.
			g.log.Error("crlgen: applying the ledger failed; no new CRL until it works again", "err", err, "retry_in", retryIn,
				"hint", "a full disk (free space in dir), an unreachable ledger, or a damaged store (move dir away: crlgen rebuilds it from the ledger)")
		},
	})
	g.log.Info("crlgen: serving", "addr", ln.Addr().String(), "resume_after_seq", from)
	// Nothing is issued before the store has caught up with the ledger: a
	// fresh replica must not publish a CRL that lacks known revocations.
	select {
	case <-g.caught:
	case err := <-errc:
		return err
	case <-ctx.Done():
		return g.srv.srv.Shutdown()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	dirty := map[string]bool{} // issuers owing a delta for new revocations
	for {
		var nextSecond <-chan time.Time // a CRL waits for the next second
		for _, name := range g.order {
			done, err := g.schedule(name, dirty[name])
			if err != nil {
				g.log.Error("crlgen: issuing a CRL failed; will retry", "issuer", name, "err", err)
			}
			if done {
				delete(dirty, name)
			} else if err == nil && nextSecond == nil {
				now := time.Now()
				nextSecond = time.After(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
			}
		}
		select {
		case <-ctx.Done():
			return g.srv.srv.Shutdown()
		case err := <-errc:
			return err
		case <-g.changed:
			for _, name := range g.order {
				dirty[name] = true
			}
			select { // debounce: gather a burst into one delta
			case <-time.After(g.cfg.Debounce):
			case <-ctx.Done():
			}
		case <-tick.C:
		case <-nextSecond:
		}
	}
}

// schedule issues what is due for one issuer: a full CRL every
// full_every, a delta every delta_every, when dirty (revocations came) or
// when the last full CRL lacks one (Build failed between the two).
// done is false when something is still owed: it failed, or it waits for
// the next second because a CRL it would replace already carries this one
// (Build would date it ahead of the clock, which relying parties refuse as
// not yet valid).
func (g *Generator) schedule(name string, dirty bool) (done bool, err error) {
	now := g.d.Now()
	full, err := g.st.getPublished(name, string(Full))
	if err != nil {
		return false, err
	}
	delta, err := g.st.getPublished(name, string(Delta))
	if err != nil {
		return false, err
	}
	kind := Full
	switch {
	case full == nil || now.Sub(time.Unix(full.ThisUpdate, 0)) >= g.cfg.FullEvery:
		// A full CRL comes with a delta: both must be free to take this second.
		if datedNow(full, now) || datedNow(delta, now) {
			return false, nil
		}
	case delta == nil || delta.Number < full.Number || dirty || now.Sub(time.Unix(delta.ThisUpdate, 0)) >= g.cfg.DeltaEvery:
		if datedNow(delta, now) {
			return false, nil
		}
		kind = Delta
	default:
		return true, nil
	}
	if _, err := g.Build(name, kind); err != nil {
		return false, err
	}
	return true, nil
}

// datedNow says whether p carries the current second or, by Build's
// strictly increasing thisUpdate, a second or two ahead. A clock that
// stepped back further does not hold issuance up: Build then dates CRLs
// after the last ones.
func datedNow(p *published, now time.Time) bool {
	return p != nil && p.ThisUpdate >= now.Unix() && p.ThisUpdate <= now.Unix()+2
}
