// Package signer is certmill's stateless signing service: batches of CSRs
// in, certificates out, every one acknowledged by the ledger before any
// byte of the answer is written.
package signer

import (
	"net"
	"time"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/tenant"
)

// Config is certmill-signer's YAML file.
type Config struct {
	// Listen is host:port of the API. Default 127.0.0.1:8443.
	Listen string `yaml:"listen"`
	// TLS is the server's certificate and key (PEM files). Required unless
	// InsecurePlainHTTP is set.
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// InsecurePlainHTTP serves plain HTTP. Danger: bearer tokens travel in
	// clear. Allowed only when Listen is a loopback address (development).
	InsecurePlainHTTP bool `yaml:"insecure_plain_http"`
	// IssuersFile is the issuers and profiles file (configs/issuers.yaml).
	IssuersFile string `yaml:"issuers_file"`
	// HSM is the online token with the issuing CAs' keys.
	HSM hsm.Config `yaml:"hsm"`
	// Ledger is where every issuance is recorded first.
	Ledger ledger.Config `yaml:"ledger"`
	// Tenants are the API's callers.
	Tenants []*tenant.Tenant `yaml:"tenants"`
	// Lint runs zlint on every certificate before the HSM signs it.
	// Default true; turning it off is a danger the operator signs for.
	Lint bool `yaml:"lint"`
	// Limits bound what one request may cost.
	Limits Limits `yaml:"limits"`
	// Index is the listing index (GET /v1/certificates?batch_id=...).
	Index IndexConfig `yaml:"index"`
	// Workers is how many CSRs are checked and signed at once. Default:
	// the HSM's session count times 2.
	Workers int `yaml:"workers"`

	dir string
}

// Limits bound requests.
type Limits struct {
	// MaxBodyBytes bounds a request body. Default 32 MiB (10,000 P-256
	// CSRs in PEM are about 6 MiB).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxCSRs bounds a batch. Default 10,000.
	MaxCSRs int `yaml:"max_csrs"`
	// ReadTimeout bounds reading one request, body included; a slower
	// client is cut off. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one answer. Default 120s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// BatchTimeout bounds the work on one batch. Default 10m.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// ListWait bounds how long a listing waits for the index to catch up
	// with the ledger (so that it holds every certificate acknowledged
	// before the request); then 503. Default 2s.
	ListWait time.Duration `yaml:"list_wait"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8443"
	}
	c.HSM.FillDefaults(hsm.DefaultConfig().Sessions)
	c.Ledger.Defaults()
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 32 << 20
	}
	if c.Limits.MaxCSRs == 0 {
		c.Limits.MaxCSRs = 10000
	}
	if c.Limits.ReadTimeout == 0 {
		c.Limits.ReadTimeout = 30 * time.Second
	}
	if c.Limits.WriteTimeout == 0 {
		c.Limits.WriteTimeout = 120 * time.Second
	}
	if c.Limits.IdleTimeout == 0 {
		c.Limits.IdleTimeout = 60 * time.Second
	}
	if c.Limits.BatchTimeout == 0 {
		c.Limits.BatchTimeout = 10 * time.Minute
	}
	if c.Limits.ListWait == 0 {
		c.Limits.ListWait = 2 * time.Second
	}
	if c.Index.MinFreeBytes == 0 {
		c.Index.MinFreeBytes = 64 << 20
	}
	if c.Index.MetadataKeys == nil {
		c.Index.MetadataKeys = []string{"device_id", "product_line"}
	}
	if c.Workers == 0 {
		c.Workers = 2 * c.HSM.Sessions
	}
}

// Validate lists every problem.
func (c *Config) Validate() error {
	var p config.Problems
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		p.Addf("listen: %v", err)
	}
	if c.InsecurePlainHTTP {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			p.Addf("insecure_plain_http: only on a loopback address, not %q (tokens would cross the network in clear)", c.Listen)
		}
	} else if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
		p.Addf("tls.cert_file and tls.key_file: required (or insecure_plain_http on loopback for development)")
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
	if len(c.Tenants) == 0 {
		p.Addf("tenants: at least one")
	}
	if c.Limits.MaxCSRs < 1 || c.Limits.MaxBodyBytes < 1024 {
		p.Addf("limits: max_csrs and max_body_bytes too small")
	}
	if c.Workers < 1 {
		p.Addf("workers: must be positive")
	}
	return p.Err()
}

// Resolve makes relative paths relative to the folder of the file at path.
func (c *Config) Resolve(path string) {
	config.ResolvePaths(path, &c.IssuersFile, &c.TLS.CertFile, &c.TLS.KeyFile, &c.HSM.PIN.File, &c.Ledger.Dir, &c.Ledger.Credentials, &c.Index.Dir)
}

// Load reads a signer configuration file.
func Load(path string) (*Config, error) {
	c := &Config{Lint: true}
	if err := config.Load(path, c); err != nil {
		return nil, err
	}
	c.Resolve(path)
	return c, nil
}
