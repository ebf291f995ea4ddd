package signer

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/service"
	"github.com/certmill/certmill/pkg/tenant"
)

// Deps are what main hands in. Nil fields get defaults.
type Deps struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	// HSM and Ledger, when set, are used instead of opening them from the
	// configuration (certmill-dev and tests share them).
	HSM    *hsm.HSM
	Ledger *ledger.Ledger
}

// Signer is the service. New builds it; Run serves until ctx ends.
type Signer struct {
	cfg     *Config
	log     *slog.Logger
	hsm     *hsm.HSM
	ledger  *ledger.Ledger
	index   *index // nil: listing off
	owned   service.Owned
	tenants *tenant.Set
	issuers map[string]*issuer
	m       *metrics
	reg     *prometheus.Registry
	srv     *fasthttp.Server
	ready   atomic.Bool
	work    chan struct{} // worker slots
	addr    atomic.Value  // net.Addr once listening
}

// New opens what the configuration names and checks that every issuer's
// key is on the token and matches its certificate.
func New(ctx context.Context, cfg *Config, d Deps) (*Signer, error) {
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
	s := &Signer{cfg: cfg, log: d.Log, reg: d.Registry, issuers: map[string]*issuer{}, work: make(chan struct{}, cfg.Workers)}
	var err error
	if s.tenants, err = tenant.NewSet(cfg.Tenants); err != nil {
		return nil, err
	}
	files, err := profile.Load(cfg.IssuersFile)
	if err != nil {
		return nil, err
	}
	res, err := service.Open(ctx, cfg.HSM, cfg.Ledger, d.HSM, d.Ledger, d.Log)
	if err != nil {
		return nil, err
	}
	s.owned.Add(res.Close)
	s.hsm, s.ledger = res.HSM, res.Ledger
	if cfg.Index.Dir != "" {
		if s.index, err = openIndex(cfg.Index); err != nil {
			s.Close()
			return nil, err
		}
		s.owned.Add(func() { s.index.close() })
	}
	for _, p := range files.Issuers {
		is, err := loadIssuer(p, s.hsm)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.issuers[p.Name] = is
	}
	for _, t := range cfg.Tenants {
		for iss, profs := range t.Issuers {
			is, ok := s.issuers[iss]
			if !ok {
				s.Close()
				return nil, fmt.Errorf("tenant %s: unknown issuer %q", t.Name, iss)
			}
			for _, p := range profs {
				if is.prof.Profiles[p] == nil {
					s.Close()
					return nil, fmt.Errorf("tenant %s: issuer %s has no profile %q", t.Name, iss, p)
				}
			}
		}
	}
	s.m = newMetrics(s.reg)
	for _, is := range s.issuers {
		is.key = countedSigner{is.key, s.m.hsmInFlight}
	}
	s.srv = &fasthttp.Server{
		Name:                          "certmill-signer",
		Handler:                       s.handle,
		ReadTimeout:                   cfg.Limits.ReadTimeout,
		WriteTimeout:                  cfg.Limits.WriteTimeout,
		IdleTimeout:                   cfg.Limits.IdleTimeout,
		MaxRequestBodySize:            cfg.Limits.MaxBodyBytes,
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         true,
		Concurrency:                   4096,
		ErrorHandler:                  s.transportError,
		Logger:                        slogPrintf{s.log},
	}
	return s, nil
}

// Close releases what New opened.
func (s *Signer) Close() {
	s.owned.Close()
}

// Addr is the listening address once Run has started, or nil.
func (s *Signer) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// Run serves until ctx ends, then stops taking requests, lets the ones in
// flight finish (their ledger writes included) and returns.
func (s *Signer) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("signer: listen: %w", err)
	}
	s.addr.Store(ln.Addr())
	if !s.cfg.InsecurePlainHTTP {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("signer: TLS key pair: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	if s.index != nil {
		fctx, stop := context.WithCancel(ctx)
		followed := make(chan struct{})
		go func() { defer close(followed); s.follow(fctx) }()
		defer func() { stop(); <-followed }()
	}
	s.ready.Store(true)
	s.log.Info("signer: serving", "addr", ln.Addr().String(), "tls", !s.cfg.InsecurePlainHTTP, "issuers", len(s.issuers))
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.ready.Store(false)
		return err
	case <-ctx.Done():
	}
	s.ready.Store(false) // readiness off first, so load balancers move away
	s.log.Info("signer: shutting down, draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.WriteTimeout+s.cfg.Limits.BatchTimeout)
	defer cancel()
	if err := s.srv.ShutdownWithContext(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

type metrics struct {
	batchSize   prometheus.Histogram
	csrSeconds  prometheus.Histogram
	lintSeconds prometheus.Histogram
	lintChecks  *prometheus.CounterVec
	hsmSeconds  prometheus.Histogram
	hsmInFlight prometheus.Gauge
	ackSeconds  prometheus.Histogram
	issued      *prometheus.CounterVec
	problems    *prometheus.CounterVec
	requests    *prometheus.CounterVec
	metricsHTTP fasthttp.RequestHandler
}

func newMetrics(reg *prometheus.Registry) *metrics {
	buckets := prometheus.ExponentialBuckets(0.00005, 2, 18)
	m := &metrics{
		batchSize:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certmill_signer_batch_csrs", Help: "CSRs per submitted batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		csrSeconds:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certmill_signer_csr_seconds", Help: "Time to check, lint and sign one CSR.", Buckets: buckets}),
		lintSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certmill_signer_lint_seconds", Help: "zlint time per certificate, throwaway signature included.", Buckets: buckets}),
		lintChecks:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certmill_signer_lint_checks_total", Help: "Certificates checked before signing: zlint run on a draft, or covered by the zlint verdict on the first certificate of their shape (profiles with lint: shape)."}, []string{"how"}),
		hsmSeconds:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certmill_signer_hsm_sign_seconds", Help: "HSM signature time per certificate, session pool wait included.", Buckets: buckets}),
		hsmInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "certmill_signer_hsm_signatures_in_flight", Help: "HSM signatures asked for and not yet returned: above hsm.sessions, callers wait for a session."}),
		ackSeconds:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certmill_signer_ledger_ack_seconds", Help: "Ledger acknowledgement time per chunk.", Buckets: buckets}),
		issued:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certmill_signer_certificates_total", Help: "Certificates returned, by issuer and whether they were issued now or replayed for a retried batch."}, []string{"issuer", "how"}),
		problems:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certmill_signer_problems_total", Help: "Problems answered, by type."}, []string{"type"}),
		requests:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certmill_signer_requests_total", Help: "Requests by route and status."}, []string{"route", "status"}),
	}
	reg.MustRegister(m.batchSize, m.csrSeconds, m.lintSeconds, m.lintChecks, m.hsmSeconds, m.hsmInFlight, m.ackSeconds, m.issued, m.problems, m.requests)
	m.metricsHTTP = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return m
}

// countedSigner counts the signatures in flight through the HSM's pool.
type countedSigner struct {
	crypto.Signer
	inFlight prometheus.Gauge
}

func (c countedSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.inFlight.Inc()
	defer c.inFlight.Dec()
	return c.Signer.Sign(r, digest, opts)
}

// slogPrintf sends fasthttp's own messages to the structured log.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, args ...any) {
	l.log.Info("signer: http", "msg", fmt.Sprintf(format, args...))
}
