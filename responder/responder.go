// Package responder answers OCSP (RFC 6960, in the RFC 5019 profile) from
// its own Pebble store, fed by the ledger.
//
// Each issuing CA gets a delegated responder certificate at start: a fresh
// P-256 key in memory, certified by the CA key in the HSM, with
// id-kp-OCSPSigning and id-pkix-ocsp-nocheck, valid for ResponderValidity
// (2 days by default) and renewed at half-life. The key lives in memory
// because signing every answer through the HSM would cap the responder at
// the HSM's rate; a short-lived certificate bounds what a stolen key is
// worth (DESIGN invariant 7).
//
// Answers are signed once and kept until half their validity has passed,
// and dropped at once when the ledger changes the serial's status.
// Nonces are ignored (RFC 5019 §4: pre-produced responses carry none).
//
// What the responder reads and answers:
//
//   - GET, HEAD and POST (RFC 6960 appendix A, RFC 9110 §9.3.2); any other
//     method gets 405 with Allow. A POST's Content-Type may be missing; an
//     explicit one other than application/ocsp-request is malformedRequest.
//   - CertIDs in SHA-1, SHA-256, SHA-384 or SHA-512, the hash's parameters
//     NULL or absent; the answer's CertID is the request's, byte for byte.
//     Another hash is unauthorized, other parameters malformedRequest.
//   - Up to maxCertIDs (8) CertIDs in one request, all of one issuer: one
//     SingleResponse each, in the request's order, signed once and not
//     cached. More than 8 is malformedRequest; CertIDs of two issuers are
//     unauthorized (each issuer's answers have their own signer).
//   - Serials of zero or below are answered unknown (RFC 5280 §4.1.2.2).
//   - A critical request extension other than the nonce is malformedRequest
//     (RFC 6960 §4.4); signed requests are read, the signature ignored.
//   - POST bodies up to MaxRequestBytes; above it malformedRequest, and 413
//     above four times it (fasthttp does not read the body).
//
// Answers name the responder byKey (RFC 5019 §2.2.2), backdate thisUpdate
// by thisUpdateBackdate for slow device clocks, and carry RFC 5019 §6.2
// caching headers; a GET or HEAD is answered 304 on a matching
// If-None-Match (If-Modified-Since is ignored: see notModified).
package responder

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/pkg/service"
	"github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is certmill-responder's YAML file.
type Config struct {
	// Listen is host:port. Default 127.0.0.1:8081.
	Listen string `yaml:"listen"`
	// Dir is the responder's Pebble store. Required.
	Dir string `yaml:"dir"`
	// IssuersFile names the issuers, their certificates and key labels.
	IssuersFile string `yaml:"issuers_file"`
	// HSM holds the CA keys that certify the delegated responder keys.
	HSM hsm.Config `yaml:"hsm"`
	// Ledger feeds the store.
	Ledger ledger.Config `yaml:"ledger"`
	// ResponseValidity is nextUpdate - producedAt of an answer; thisUpdate
	// is up to 5 minutes before producedAt (thisUpdateBackdate). Default 1h.
	ResponseValidity time.Duration `yaml:"response_validity"`
	// ResponderValidity is the delegated responder certificate's lifetime.
	// Default 48h.
	ResponderValidity time.Duration `yaml:"responder_validity"`
	// ExpectedCertificates sizes each issuer's bloom filter. Default 1,000,000.
	ExpectedCertificates uint `yaml:"expected_certificates"`
	// MaxRequestBytes bounds a request: a POST body above it is answered
	// malformedRequest, one above four times it is refused with 413
	// unread. Default 16 KiB, room for a signed request with its
	// certificates (RFC 6960 §4.1.2).
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MinFreeBytes is the space the responder keeps free on dir's disk:
	// below it, it stops applying the ledger and answers tryLater (its
	// state would fall behind revocations) instead of failing mid-write.
	// Default 64 MiB.
	MinFreeBytes uint64 `yaml:"min_free_bytes"`
	// UnknownCache is how many signed "unknown" answers (serials never
	// issued) are kept, least recently used first out, about 1 KiB each: a
	// broken fleet that keeps asking about the same wrong serials is
	// answered from memory, while a flood of fresh random serials cannot
	// grow it. Default 50,000; -1 turns it off.
	UnknownCache int `yaml:"unknown_cache"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8081"
	}
	c.HSM.FillDefaults(2)
	c.Ledger.Defaults()
	if c.ResponseValidity == 0 {
		c.ResponseValidity = time.Hour
	}
	if c.ResponderValidity == 0 {
		c.ResponderValidity = 48 * time.Hour
	}
	if c.ExpectedCertificates == 0 {
		c.ExpectedCertificates = 1_000_000
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 16 << 10
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = 64 << 20
	}
	if c.UnknownCache == 0 {
		c.UnknownCache = 50_000
	}
}

// Validate lists every problem.
func (c *Config) Validate() error {
	var p config.Problems
	if c.Dir == "" {
		p.Addf("dir: required (the responder's store)")
	}
	if c.IssuersFile == "" {
		p.Addf("issuers_file: required")
	}
	if err := c.HSM.Validate(); err != nil {
		p = append(p, err)
	}
	if err := c.Ledger.Validate(); err != nil {
		p = append(p, err)
	}
	if c.ResponseValidity < time.Minute || c.ResponderValidity < 2*c.ResponseValidity {
		p.Addf("response_validity at least 1m, responder_validity at least twice it")
	}
	return p.Err()
}

// Load reads a configuration file; relative paths are relative to it.
func Load(path string) (*Config, error) {
	c := &Config{}
	if err := config.Load(path, c); err != nil {
		return nil, err
	}
	config.ResolvePaths(path, &c.Dir, &c.IssuersFile, &c.HSM.PIN.File, &c.Ledger.Dir, &c.Ledger.Credentials)
	return c, nil
}

// Deps are what main hands in.
type Deps struct {
	Log      *slog.Logger
	Registry *prometheus.Registry // optional: a fresh one with the runtime's collectors
	HSM      *hsm.HSM             // optional: shared
	Ledger   *ledger.Ledger       // optional: shared
}

// issuer is one CA as the responder answers for it.
type issuer struct {
	name      string
	cert      *x509.Certificate
	caKey     *hsm.Key
	nameHash  map[crypto.Hash][]byte
	keyHash   map[crypto.Hash][]byte
	delegated atomic.Pointer[delegated]
}

type delegated struct {
	cert *x509.Certificate
	key  crypto.Signer
	enc  *encoder
}

// Responder is the service.
type Responder struct {
	cfg     *Config
	log     *slog.Logger
	st      *store
	hsm     *hsm.HSM
	ledger  *ledger.Ledger
	owned   service.Owned
	issuers []*issuer
	caught  atomic.Bool
	cache   sync.Map                      // cacheKey -> *answer
	unknown *lru.Cache[cacheKey, *answer] // never-issued serials; nil: none kept
	// cacheMu orders cache stores against forget: an answer computed from
	// a status read before a change is never stored after the change
	// dropped the key. Writers: forget; readers: answer's check-and-store.
	cacheMu sync.RWMutex
	changes atomic.Uint64
	srv     *fasthttp.Server
	addr    atomic.Value
	metrics fasthttp.RequestHandler
}

type cacheKey struct {
	issuer   string
	serial   string // certID.serial
	hash     crypto.Hash
	noParams bool // the CertID's form: see certID.noParams
}

type answer struct {
	der        []byte
	thisUpdate time.Time // the latest of its SingleResponses': Last-Modified
	nextUpdate time.Time
	staleAt    time.Time
	// headers, made once
	etag, lastMod, expires []byte
}

// New opens the store, the HSM and the ledger and certifies a delegated
// responder key per issuer.
func New(ctx context.Context, cfg *Config, d Deps) (*Responder, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = service.NewRegistry()
	}
	r := &Responder{cfg: cfg, log: d.Log, metrics: service.MetricsHandler(d.Registry)}
	var err error
	if r.st, err = openStore(cfg.Dir, cfg.ExpectedCertificates, cfg.MinFreeBytes); err != nil {
		return nil, err
	}
	r.owned.Add(func() { r.st.close() })
	r.st.onChange = r.forget
	if cfg.UnknownCache > 0 {
		r.unknown, _ = lru.New[cacheKey, *answer](cfg.UnknownCache)
	}
	files, err := profile.Load(cfg.IssuersFile)
	if err != nil {
		r.Close()
		return nil, err
	}
	res, err := service.Open(ctx, cfg.HSM, cfg.Ledger, d.HSM, d.Ledger, d.Log)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.owned.Add(res.Close)
	r.hsm, r.ledger = res.HSM, res.Ledger
	for _, p := range files.Issuers {
		is, err := loadIssuer(p, r.hsm)
		if err != nil {
			r.Close()
			return nil, err
		}
		if err := r.certify(is); err != nil {
			r.Close()
			return nil, err
		}
		r.issuers = append(r.issuers, is)
	}
	r.srv = &fasthttp.Server{
		Name: "certmill-responder", Handler: r.handle, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: 60 * time.Second, MaxRequestBodySize: 4 * cfg.MaxRequestBytes, NoDefaultServerHeader: true, ReadBufferSize: 8192,
		ErrorHandler: errorHandler, Logger: slogPrintf{d.Log},
	}
	return r, nil
}

func loadIssuer(p *profile.Issuer, h *hsm.HSM) (*issuer, error) {
	cert, err := p.LoadCertificate()
	if err != nil {
		return nil, fmt.Errorf("responder: %w", err)
	}
	key, err := h.Key(p.KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("responder: issuer %s: %w", p.Name, err)
	}
	return newIssuer(p.Name, cert, key)
}

// newIssuer computes the CertID hashes that name the issuer in requests.
func newIssuer(name string, cert *x509.Certificate, key *hsm.Key) (*issuer, error) {
	is := &issuer{name: name, cert: cert, caKey: key, nameHash: map[crypto.Hash][]byte{}, keyHash: map[crypto.Hash][]byte{}}
	bits, err := publicKeyBits(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	for _, h := range certIDHashes {
		hn := h.hash.New()
		hn.Write(cert.RawSubject)
		is.nameHash[h.hash] = hn.Sum(nil)
		hk := h.hash.New()
		hk.Write(bits)
		is.keyHash[h.hash] = hk.Sum(nil)
	}
	return is, nil
}

var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// certify makes a new delegated responder key and certificate for is.
func (r *Responder) certify(is *issuer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	sn, err := serial.New()
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	null, _ := asn1.Marshal(asn1.NullRawValue)
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: is.cert.Subject.CommonName + " OCSP Responder", Organization: is.cert.Subject.Organization, Country: is.cert.Subject.Country},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(r.cfg.ResponderValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		SubjectKeyId: profile.KeyID(key.Public()),
		// RFC 6960 §4.2.2.2.1: id-pkix-ocsp-nocheck, so that clients do not
		// ask about the responder's own certificate.
		ExtraExtensions:       []pkix.Extension{{Id: oidOCSPNoCheck, Value: null}},
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(is.cert.NotAfter) {
		tmpl.NotAfter = is.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, key.Public(), is.caKey)
	if err != nil {
		return fmt.Errorf("responder: certify the delegated responder of %s: %w", is.name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	enc, err := newEncoder(is, cert, key)
	if err != nil {
		return err
	}
	is.delegated.Store(&delegated{cert: cert, key: key, enc: enc})
	r.log.Info("responder: delegated responder certified", "issuer", is.name, "serial", serial.Hex(sn), "not_after", cert.NotAfter)
	return nil
}

// forget drops cached answers for a serial whose status changed: in
// every CertID hash and form. s is the serial's octets as the store keys
// them.
func (r *Responder) forget(issuerName string, s []byte) {
	sk := serialKey(s)
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	r.changes.Add(1)
	for _, h := range certIDHashes {
		for _, noParams := range []bool{false, true} {
			k := cacheKey{issuerName, sk, h.hash, noParams}
			r.cache.Delete(k)
			if r.unknown != nil {
				r.unknown.Remove(k)
			}
		}
	}
}

// Close releases what New opened.
func (r *Responder) Close() {
	r.owned.Close()
}

// Addr is the listening address once Run has started.
func (r *Responder) Addr() net.Addr {
	a, _ := r.addr.Load().(net.Addr)
	return a
}

// Ready reports whether the store has caught up with the ledger.
func (r *Responder) Ready() bool { return r.caught.Load() }

// Run consumes the ledger and serves OCSP until ctx ends. Until the store
// has applied every record that was in the stream when Run started, every
// answer is tryLater: a certificate revoked while the responder was down
// must never look good, not even for a moment.
func (r *Responder) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("responder: listen: %w", err)
	}
	r.addr.Store(ln.Addr())
	errc := make(chan error, 2)
	go func() { errc <- r.srv.Serve(ln) }()
	from, err := r.st.lastSeq()
	if err != nil {
		return err
	}
	go r.ledger.Follow(ctx, r.st.lastSeq, r.st, ledger.FollowOptions{
		ConsumeOptions: ledger.ConsumeOptions{CaughtUp: func(seq uint64) {
			r.caught.Store(true)
			r.log.Info("responder: caught up with the ledger", "seq", seq)
		}},
		Failed: func(err error, retryIn time.Duration) {
			// Behind the ledger, the store may say good for a certificate
			// revoked since: answer tryLater and fail readiness until it
			// has caught up again.
			r.caught.Store(false)
			r.log.Error("responder: applying the ledger failed; answering tryLater until it works again", "err", err, "retry_in", retryIn,
				"hint", "a full disk (free space in dir), an unreachable ledger, or a damaged store (move dir away: the responder rebuilds it from the ledger)")
		},
	})
	renew := time.NewTicker(r.cfg.ResponderValidity / 4)
	defer renew.Stop()
	r.log.Info("responder: serving", "addr", ln.Addr().String(), "resume_after_seq", from)
	for {
		select {
		case <-ctx.Done():
			return r.srv.Shutdown()
		case err := <-errc:
			return err
		case <-renew.C:
			for _, is := range r.issuers {
				if d := is.delegated.Load(); time.Until(d.cert.NotAfter) < r.cfg.ResponderValidity/2 {
					if err := r.certify(is); err != nil {
						r.log.Error("responder: renewing the delegated responder failed; will retry", "issuer", is.name, "err", err)
					} else {
						r.cache.Clear()
					}
				}
			}
		}
	}
}

// slogPrintf sends fasthttp's own messages (bad clients) to the log at Info.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, args ...any) {
	l.log.Info("responder: http", "msg", fmt.Sprintf(format, args...))
}
