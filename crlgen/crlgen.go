// Package crlgen issues full and delta CRLs per issuing CA, signed in the
// HSM, and serves them, with the issuers' certificates, as a CDN origin.
//
// It materialises the ledger's revocations into its own Pebble store and
// resumes from the last applied sequence. CRL numbers come from that store,
// never from the clock: a number is used up (synced) before the CRL that
// carries it is signed, so a crash skips a number at worst and never
// reuses one. Full and delta CRLs share the sequence (RFC 5280 §5.2.3:
// "monotonically increasing sequence numbers for a given CRL scope and
// CRL issuer"), and every delta names its base in the delta CRL
// indicator (§5.2.4): the oldest full CRL not yet past its nextUpdate. It
// lists every revocation since, so that any full CRL a relying party may
// still hold combines with the newest delta. thisUpdate strictly increases
// per issuer and kind.
//
// expiredCertsOnCRL: not used. An entry leaves the full CRL issued after
// one regularly scheduled full CRL with a thisUpdate beyond the
// certificate's notAfter listed it (§3.3: "An entry MUST NOT be removed
// from the CRL until it appears on one regularly scheduled CRL issued
// beyond the revoked certificate's validity period"); a delta lists
// everything after its base, expired or not. A relying party must check
// validity first.
package crlgen

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/fault"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/service"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is certmill-crlgen's YAML file.
type Config struct {
	// Listen is host:port of the CRL origin. Default 127.0.0.1:8082.
	Listen string `yaml:"listen"`
	// Dir is crlgen's Pebble store. Required.
	Dir string `yaml:"dir"`
	// IssuersFile names the issuers, their certificates and key labels.
	IssuersFile string `yaml:"issuers_file"`
	// RootDir, if set, is the ceremony's folder: root.crl and root.crt
	// are served from it, as the issuing CAs' certificates name them.
	RootDir string `yaml:"root_dir"`
	// HSM is the online token with the issuing CAs' keys.
	HSM hsm.Config `yaml:"hsm"`
	// Ledger is where revocations come from.
	Ledger ledger.Config `yaml:"ledger"`
	// FullEvery is how often a full CRL is issued. Default 6h.
	FullEvery time.Duration `yaml:"full_every"`
	// FullValidity is nextUpdate - thisUpdate of a full CRL. Default 7 days
	// (CA/B BR: at most 10 days for subscriber CRLs).
	FullValidity time.Duration `yaml:"full_validity"`
	// DeltaEvery is how often a delta CRL is issued when nothing changes.
	// Default 15m.
	DeltaEvery time.Duration `yaml:"delta_every"`
	// DeltaValidity is nextUpdate - thisUpdate of a delta CRL. Default 1h.
	DeltaValidity time.Duration `yaml:"delta_validity"`
	// Debounce is how long after a revocation a delta CRL is issued, so
	// that a burst of revocations makes one delta. Default 1s.
	Debounce time.Duration `yaml:"debounce"`
	// MinFreeBytes is the space crlgen keeps free on dir's disk: below it,
	// it stops applying the ledger and issuing CRLs (the published ones
	// stay served) instead of failing mid-write. Default 64 MiB.
	MinFreeBytes uint64 `yaml:"min_free_bytes"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8082"
	}
	c.HSM.FillDefaults(2)
	c.Ledger.Defaults()
	for _, x := range []struct {
		p *time.Duration
		d time.Duration
	}{{&c.FullEvery, 6 * time.Hour}, {&c.FullValidity, 7 * 24 * time.Hour}, {&c.DeltaEvery, 15 * time.Minute}, {&c.DeltaValidity, time.Hour}, {&c.Debounce, time.Second}} {
		if *x.p == 0 {
			*x.p = x.d
		}
	}
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = 64 << 20
	}
}

// Validate lists every problem.
func (c *Config) Validate() error {
	var p config.Problems
	if c.Dir == "" {
		p.Addf("dir: required (crlgen's store)")
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
	if c.FullValidity <= c.FullEvery {
		p.Addf("full_validity (%s) must exceed full_every (%s), or CRLs expire before the next one", c.FullValidity, c.FullEvery)
	}
	if c.DeltaValidity <= c.DeltaEvery {
		p.Addf("delta_validity (%s) must exceed delta_every (%s)", c.DeltaValidity, c.DeltaEvery)
	}
	return p.Err()
}

// Load reads a configuration file; relative paths are relative to it.
func Load(path string) (*Config, error) {
	c := &Config{}
	if err := config.Load(path, c); err != nil {
		return nil, err
	}
	config.ResolvePaths(path, &c.Dir, &c.IssuersFile, &c.RootDir, &c.HSM.PIN.File, &c.Ledger.Dir, &c.Ledger.Credentials)
	return c, nil
}

// Deps are what main hands in.
type Deps struct {
	Log      *slog.Logger
	Registry *prometheus.Registry // optional: a fresh one with the runtime's collectors
	Now      func() time.Time
	HSM      *hsm.HSM       // optional: shared
	Ledger   *ledger.Ledger // optional: shared
	// AfterSign, for fault-injection tests, runs between signing a CRL and
	// publishing it; an error there aborts the publication as a crash would.
	AfterSign func(issuer string, number int64) error
}

type issuer struct {
	name string
	prof *profile.Issuer
	cert *x509.Certificate
	key  *hsm.Key
}

// Generator is the service.
type Generator struct {
	cfg     *Config
	d       Deps
	log     *slog.Logger
	st      *store
	hsm     *hsm.HSM
	ledger  *ledger.Ledger
	owned   service.Owned
	issuers map[string]*issuer
	order   []string

	mu      sync.Mutex // serialises CRL building per process
	caught  chan struct{}
	changed chan struct{}
	srv     *origin
}

// New opens the store, the HSM and the ledger.
func New(ctx context.Context, cfg *Config, d Deps) (*Generator, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	g := &Generator{cfg: cfg, d: d, log: d.Log, issuers: map[string]*issuer{}, caught: make(chan struct{}), changed: make(chan struct{}, 1)}
	var err error
	if g.st, err = openStore(cfg.Dir, cfg.MinFreeBytes); err != nil {
		return nil, err
	}
	g.owned.Add(func() { g.st.close() })
	files, err := profile.Load(cfg.IssuersFile)
	if err != nil {
		g.Close()
		return nil, err
	}
	res, err := service.Open(ctx, cfg.HSM, cfg.Ledger, d.HSM, d.Ledger, d.Log)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.owned.Add(res.Close)
	g.hsm, g.ledger = res.HSM, res.Ledger
	for _, p := range files.Issuers {
		is, err := loadIssuer(p, g.hsm)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.issuers[p.Name] = is
		g.order = append(g.order, p.Name)
	}
	g.srv = newOrigin(g)
	return g, nil
}

func loadIssuer(p *profile.Issuer, h *hsm.HSM) (*issuer, error) {
	cert, err := p.LoadCertificate()
	if err != nil {
		return nil, fmt.Errorf("crlgen: %w", err)
	}
	key, err := h.Key(p.KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("crlgen: issuer %s: %w", p.Name, err)
	}
	return &issuer{name: p.Name, prof: p, cert: cert, key: key}, nil
}

// Close releases what New opened.
func (g *Generator) Close() {
	g.owned.Close()
}

var (
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidInvalidityDate    = asn1.ObjectIdentifier{2, 5, 29, 24}
)

// Kind is "full" or "delta".
type Kind string

// The kinds of CRL.
const (
	Full  Kind = "full"
	Delta Kind = "delta"
)

// Result is a CRL that Build published.
type Result struct {
	Kind    Kind
	Number  int64
	Base    int64 // delta: the full CRL it names
	Entries int
	DER     []byte
}

// checkSignature verifies a CRL's outer signature with the CA's key,
// reading only the CertificateList envelope (RFC 5280 §5.1).
func checkSignature(ca *x509.Certificate, der []byte) error {
	var outer struct {
		TBS asn1.RawValue
		Alg pkix.AlgorithmIdentifier
		Sig asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) != 0 {
		return fmt.Errorf("not a CertificateList: %v", err)
	}
	alg := x509.SHA256WithRSA
	switch oid, _, _ := sigAlgorithm(ca); {
	case oid.Equal(oidECDSASHA256):
		alg = x509.ECDSAWithSHA256
	case oid.Equal(oidECDSASHA384):
		alg = x509.ECDSAWithSHA384
	}
	return ca.CheckSignature(alg, outer.TBS.FullBytes, outer.Sig.RightAlign())
}

// maxFulls bounds the full CRL history of an issuer: about
// full_validity/full_every (28 by default) are current at a time.
const maxFulls = 1024

// Build signs and publishes the next CRL of one issuer. A delta needs a
// current full CRL to name as its base; without one Build issues a full
// CRL. A full CRL is followed at once by a delta.
//
// RFC 5280 §5.2.4 lets a relying party combine a complete CRL with a delta
// when (a) the issuer and (b) the scope are the same (one issuer, one
// scope here), (c) "the CRL number of the complete CRL is equal to or
// greater than the BaseCRLNumber specified in the delta CRL" and (d) less
// than the delta's number, and the issuer "MUST ensure that the
// combination of a delta CRL and any appropriate complete CRL accurately
// reflects the current revocation status". A relying party may hold any
// full CRL until its nextUpdate, so a delta names the oldest full CRL not
// yet past its nextUpdate and lists every revocation that came after it:
// each current full CRL numbers at least that base and holds everything up
// to its own sequence, at or above the base's.
//
// Entries: a delta drops nothing (everything on it came after its base,
// which lacks it, and the base may be all a relying party holds). A full
// CRL drops an entry once the previous full CRL, issued after the
// certificate's notAfter, listed it (§3.3).
func (g *Generator) Build(issuerName string, kind Kind) (*Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	is := g.issuers[issuerName]
	if is == nil {
		return nil, fmt.Errorf("crlgen: unknown issuer %q", issuerName)
	}
	applied, err := g.st.lastSeq()
	if err != nil {
		return nil, err
	}
	fulls, err := g.st.fulls(issuerName)
	if err != nil {
		return nil, err
	}
	clock := g.d.Now().UTC().Truncate(time.Second)
	var base *fullRef // the oldest full CRL still current
	for i := range fulls {
		if fulls[i].NextUpdate >= clock.Unix() {
			base = &fulls[i]
			break
		}
	}
	if kind == Delta && base == nil {
		kind = Full
	}
	last, err := g.st.getPublished(issuerName, string(kind))
	if err != nil {
		return nil, err
	}
	// thisUpdate strictly increases per issuer and kind, so that no two
	// CRLs of a path share Last-Modified: a second CRL within a second is
	// dated the next one (schedule waits for it instead).
	now := clock
	if last != nil && last.ThisUpdate >= now.Unix() {
		now = time.Unix(last.ThisUpdate+1, 0).UTC()
	}
	validity := g.cfg.FullValidity
	if kind == Delta {
		validity = g.cfg.DeltaValidity
	}
	// INVARIANT: the number is used up before anything is signed.
	number, err := g.st.takeNumber(issuerName, g.d.Now().UnixNano())
	if err != nil {
		return nil, err
	}
	params := tbsParams{issuer: is.cert, number: number, thisUpdate: now, nextUpdate: now.Add(validity)}
	each := func(f func(rev) error) error { return g.st.revocations(issuerName, f) }
	keep := func(r rev) bool { return true }
	if kind == Delta {
		each = g.st.revocationsAfter(issuerName, base.AsOfSeq)
	} else if len(fulls) > 0 {
		prev := fulls[len(fulls)-1]
		keep = func(r rev) bool {
			// Listed on prev, issued beyond the certificate's validity.
			return r.NotAfter == 0 || r.NotAfter >= prev.ThisUpdate || r.Seq > prev.AsOfSeq
		}
	}
	entries := func(emit func(crlEntry) error) error {
		return each(func(r rev) error {
			if !keep(r) {
				return nil
			}
			e := crlEntry{serial: new(big.Int).SetBytes(r.Serial), time: time.Unix(0, r.Time).UTC().Truncate(time.Second), reason: r.Reason}
			if r.InvalidityDate != 0 {
				e.invalidityDate = time.Unix(r.InvalidityDate, 0)
			}
			return emit(e)
		})
	}
	if kind == Full {
		// RFC 5280 §5.2.6: the Freshest CRL extension names where the delta is.
		params.extensions = append(params.extensions, pkix.Extension{Id: profile.OIDFreshestCRL, Value: profile.DistributionPoints(is.prof.URLs.DeltaCRL)})
	} else {
		// RFC 5280 §5.2.4: "The delta CRL indicator is a critical CRL
		// extension that identifies a CRL as being a delta CRL."
		v, err := asn1.Marshal(big.NewInt(base.Number))
		if err != nil {
			return nil, err
		}
		params.extensions = append(params.extensions, pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: v})
	}
	hint := 4096
	if last != nil {
		hint = len(last.DER) + len(last.DER)/8
	}
	der, count, err := encodeCRL(params, hint, entries, is.key)
	if err != nil {
		return nil, fmt.Errorf("crlgen: sign %s CRL %d of %s: %w", kind, number, issuerName, err)
	}
	// Check the HSM's signature without parsing a million entries again.
	if err := checkSignature(is.cert, der); err != nil {
		return nil, fmt.Errorf("crlgen: CRL %d of %s does not verify: %w", number, issuerName, err)
	}
	fault.Point("crlgen.after-sign") // number taken, CRL signed, not yet published
	if g.d.AfterSign != nil {
		if err := g.d.AfterSign(issuerName, number); err != nil {
			return nil, err
		}
	}
	p := &published{Number: number, AsOfSeq: applied, ThisUpdate: now.Unix(), NextUpdate: params.nextUpdate.Unix(), Entries: count, DER: der}
	if kind == Delta {
		p.Base = base.Number
		err = g.st.putPublished(issuerName, string(kind), p)
	} else {
		err = g.st.putFull(issuerName, p, g.nextFulls(issuerName, fulls, p))
	}
	if err != nil {
		return nil, err
	}
	g.srv.invalidate(issuerName)
	if kind == Full {
		// The new full CRL needs a delta numbered above it; issue it now
		// (schedule also reissues one that is missing).
		g.mu.Unlock()
		_, err := g.Build(issuerName, Delta)
		g.mu.Lock()
		if err != nil {
			return nil, err
		}
	}
	g.log.Info("crlgen: CRL published", "issuer", issuerName, "kind", kind, "number", number, "base", p.Base, "entries", p.Entries, "as_of_seq", applied)
	return &Result{Kind: kind, Number: number, Base: p.Base, Entries: p.Entries, DER: der}, nil
}

// nextFulls is the full CRL history once p is published: the full CRLs
// still current at p's thisUpdate, then p.
func (g *Generator) nextFulls(issuerName string, fulls []fullRef, p *published) []fullRef {
	next := make([]fullRef, 0, len(fulls)+1)
	for _, f := range fulls {
		if f.NextUpdate >= p.ThisUpdate {
			next = append(next, f)
		}
	}
	next = append(next, fullRef{Number: p.Number, AsOfSeq: p.AsOfSeq, ThisUpdate: p.ThisUpdate, NextUpdate: p.NextUpdate})
	if drop := len(next) - maxFulls; drop > 0 {
		// Deltas no longer name these: a relying party holding one of them
		// uses it without a delta until its nextUpdate.
		g.log.Warn("crlgen: more full CRLs current than kept; the oldest are no longer delta bases",
			"issuer", issuerName, "dropped", drop, "oldest_kept", next[drop].Number, "hint", "full_every is much shorter than full_validity")
		next = next[drop:]
	}
	return next
}

// Published returns the DER of the last full or delta CRL of an issuer.
func (g *Generator) Published(issuerName string, kind Kind) ([]byte, int64, error) {
	p, err := g.st.getPublished(issuerName, string(kind))
	if err != nil || p == nil {
		return nil, 0, err
	}
	return p.DER, p.ThisUpdate, nil
}
