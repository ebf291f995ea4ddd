package ceremony

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/secret"
)

// Config is a ceremony file. Relative paths are relative to the file.
type Config struct {
	// Hierarchy names the PKI, for transcripts and share files.
	Hierarchy string `yaml:"hierarchy"`
	// OutDir receives certificates, CRLs, shares, state and transcripts.
	// Default "ceremony" beside the file. It holds the shares after init:
	// hand them out and delete them from here.
	OutDir string `yaml:"out_dir"`
	// Module is the PKCS#11 library of both tokens. Default: SoftHSM2.
	Module string `yaml:"module"`
	// Root is the offline root CA.
	Root RootConfig `yaml:"root"`
	// Custodians hold the shares of the secret that unlocks the root token.
	Custodians CustodianConfig `yaml:"custodians"`
	// Online is the token of the issuing CAs' keys (the signer's HSM).
	Online OnlineConfig `yaml:"online"`
	// IssuingCAs are the online CAs the root certifies.
	IssuingCAs []IssuingCAConfig `yaml:"issuing_cas"`

	dir string // the file's folder
}

// RootConfig describes the root CA.
type RootConfig struct {
	// Token is the label of the root's own token; init creates it and
	// refuses one that exists.
	Token string    `yaml:"token"`
	Key   KeyConfig `yaml:"key"`
	// Subject is the root's distinguished name.
	Subject Subject `yaml:"subject"`
	// ValidityDays is the root's lifetime in days. Default 7305 (20 years).
	ValidityDays int `yaml:"validity_days"`
	// CRLURL is where the root's CRL is published (http); issuing CA
	// certificates name it as their CRL distribution point.
	CRLURL string `yaml:"crl_url"`
	// CertURL is where the root certificate is published (http); issuing CA
	// certificates name it as caIssuers. Optional.
	CertURL string `yaml:"cert_url"`
	// CRLValidityDays is nextUpdate - thisUpdate of root CRLs. Default 365:
	// a root CRL must be signed again, in a ceremony, before then.
	CRLValidityDays int `yaml:"crl_validity_days"`
}

// KeyConfig names a key on a token.
type KeyConfig struct {
	Label     string        `yaml:"label"`
	Algorithm hsm.Algorithm `yaml:"algorithm"`
}

// Subject is a distinguished name.
type Subject struct {
	CommonName         string `yaml:"common_name"`
	Organization       string `yaml:"organization"`
	OrganizationalUnit string `yaml:"organizational_unit"`
	Country            string `yaml:"country"`
}

// Name returns s as a pkix.Name.
func (s Subject) Name() pkix.Name {
	n := pkix.Name{CommonName: s.CommonName}
	if s.Organization != "" {
		n.Organization = []string{s.Organization}
	}
	if s.OrganizationalUnit != "" {
		n.OrganizationalUnit = []string{s.OrganizationalUnit}
	}
	if s.Country != "" {
		n.Country = []string{s.Country}
	}
	return n
}

// CustodianConfig sets M of N.
type CustodianConfig struct {
	// Threshold is M: how many custodians must be present. At least 2.
	Threshold int `yaml:"threshold"`
	// Names are the N custodians, one share each, in order.
	Names []string `yaml:"names"`
}

// OnlineConfig is the token that holds the issuing CAs' keys.
type OnlineConfig struct {
	Token string        `yaml:"token"`
	PIN   secret.Source `yaml:"pin"`
	// SOPIN is used only when the token does not exist yet and init creates it.
	SOPIN secret.Source `yaml:"so_pin"`
}

// IssuingCAConfig is one online CA.
type IssuingCAConfig struct {
	// Name is a short identifier (manufacturing), used in file names and URLs.
	Name    string    `yaml:"name"`
	Key     KeyConfig `yaml:"key"`
	Subject Subject   `yaml:"subject"`
	// ValidityDays is the CA certificate's lifetime. Default 3653 (10
	// years); it may not outlive the root.
	ValidityDays int `yaml:"validity_days"`
	// ExtKeyUsages constrain what the CA may issue: serverAuth, clientAuth,
	// codeSigning, emailProtection, timeStamping. OCSPSigning is refused:
	// with it the CA certificate would itself look like an OCSP responder's
	// (zlint e_ca_invalid_eku); delegated responder certificates carry it.
	ExtKeyUsages []string `yaml:"ext_key_usages"`
	// Policies are certificate policy OIDs. Default: anyPolicy (2.5.29.32.0).
	Policies []string `yaml:"policies"`
}

// ExtKeyUsage maps a name as written in YAML to crypto/x509's constant.
func ExtKeyUsage(name string) (x509.ExtKeyUsage, bool) { return profile.ExtKeyUsage(name) }

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.OutDir == "" {
		c.OutDir = "ceremony"
	}
	if c.Module == "" {
		c.Module = hsm.FindSoftHSM2()
	}
	if c.Root.ValidityDays == 0 {
		c.Root.ValidityDays = 7305
	}
	if c.Root.CRLValidityDays == 0 {
		c.Root.CRLValidityDays = 365
	}
	for i := range c.IssuingCAs {
		ca := &c.IssuingCAs[i]
		if ca.ValidityDays == 0 {
			ca.ValidityDays = 3653
		}
		if len(ca.Policies) == 0 {
			ca.Policies = []string{"2.5.29.32.0"}
		}
	}
}

// Validate lists every problem with c.
func (c *Config) Validate() error {
	var p config.Problems
	if c.Hierarchy == "" {
		p.Addf("hierarchy: required")
	}
	if c.Module == "" {
		p.Addf("module: no PKCS#11 module and SoftHSM2 not found (hint: make setup)")
	}
	if c.Root.Token == "" {
		p.Addf("root.token: required")
	}
	if c.Online.Token == "" {
		p.Addf("online.token: required")
	}
	if c.Root.Token != "" && c.Root.Token == c.Online.Token {
		p.Addf("root.token and online.token must differ: the root key lives on its own token")
	}
	if c.Online.PIN.IsZero() {
		p.Addf("online.pin: give file or env (PINs never come from the command line)")
	}
	checkKey(&p, "root.key", c.Root.Key)
	checkSubject(&p, "root.subject", c.Root.Subject)
	checkURL(&p, "root.crl_url", c.Root.CRLURL, true)
	checkURL(&p, "root.cert_url", c.Root.CertURL, false)
	if c.Root.ValidityDays < 1 || c.Root.CRLValidityDays < 1 {
		p.Addf("root.validity_days and root.crl_validity_days must be positive")
	}
	m, n := c.Custodians.Threshold, len(c.Custodians.Names)
	if m < 2 || m > n || n > 255 {
		p.Addf("custodians: threshold %d of %d names: want 2 <= threshold <= names <= 255", m, n)
	}
	seen := map[string]bool{}
	for _, name := range c.Custodians.Names {
		if name == "" || strings.ContainsAny(name, "/\\\n:") || seen[name] {
			p.Addf("custodians.names: %q is empty, repeated or has /, \\, : or a newline", name)
		}
		seen[name] = true
	}
	labels := map[string]bool{c.Root.Key.Label: true}
	names := map[string]bool{}
	for i, ca := range c.IssuingCAs {
		at := fmt.Sprintf("issuing_cas[%d]", i)
		if ca.Name == "" || strings.ContainsAny(ca.Name, "/\\ ") || names[ca.Name] {
			p.Addf("%s.name: %q is empty, repeated or has a slash or space", at, ca.Name)
		}
		names[ca.Name] = true
		checkKey(&p, at+".key", ca.Key)
		if labels[ca.Key.Label] {
			p.Addf("%s.key.label: %q is used twice", at, ca.Key.Label)
		}
		labels[ca.Key.Label] = true
		checkSubject(&p, at+".subject", ca.Subject)
		if ca.ValidityDays < 1 || ca.ValidityDays > c.Root.ValidityDays {
			p.Addf("%s.validity_days: %d, want 1..root.validity_days (%d)", at, ca.ValidityDays, c.Root.ValidityDays)
		}
		if len(ca.ExtKeyUsages) == 0 {
			p.Addf("%s.ext_key_usages: name at least one; an issuing CA without EKUs may issue for any purpose", at)
		}
		for _, u := range ca.ExtKeyUsages {
			if _, ok := ExtKeyUsage(u); !ok {
				p.Addf("%s.ext_key_usages: unknown %q", at, u)
			}
		}
		for _, o := range ca.Policies {
			if _, err := parseOID(o); err != nil {
				p.Addf("%s.policies: %v", at, err)
			}
		}
	}
	return p.Err()
}

func checkKey(p *config.Problems, at string, k KeyConfig) {
	if k.Label == "" {
		p.Addf("%s.label: required", at)
	}
	if !k.Algorithm.Valid() {
		p.Addf("%s.algorithm: %q, want ecdsa-p256, ecdsa-p384, rsa-2048 or rsa-3072", at, k.Algorithm)
	}
}

func checkSubject(p *config.Problems, at string, s Subject) {
	if s.CommonName == "" || s.Organization == "" {
		p.Addf("%s: common_name and organization are required for a CA", at)
	}
	if s.Country != "" && len(s.Country) != 2 {
		p.Addf("%s.country: %q is not a two-letter ISO 3166 code", at, s.Country)
	}
}

func checkURL(p *config.Problems, at, s string, required bool) {
	if s == "" {
		if required {
			p.Addf("%s: required", at)
		}
		return
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		p.Addf("%s: %q is not an absolute http URL (RFC 5280 §4.2.1.13: CRLs and certificates are fetched over http)", at, s)
	}
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, part := range strings.Split(s, ".") {
		var n int
		if _, err := fmt.Sscanf(part, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != part {
			return nil, fmt.Errorf("%q is not a dotted OID", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("%q is not a dotted OID", s)
	}
	return oid, nil
}

// Load reads a ceremony file, applies defaults and validates it.
func Load(path string) (*Config, error) {
	c := &Config{}
	if err := config.Load(path, c); err != nil {
		return nil, err
	}
	c.dir = filepath.Dir(path)
	if !filepath.IsAbs(c.OutDir) {
		c.OutDir = filepath.Join(c.dir, c.OutDir)
	}
	c.Online.PIN = c.rel(c.Online.PIN)
	c.Online.SOPIN = c.rel(c.Online.SOPIN)
	return c, nil
}

func (c *Config) rel(s secret.Source) secret.Source {
	if s.File != "" && !filepath.IsAbs(s.File) {
		s.File = filepath.Join(c.dir, s.File)
	}
	return s
}

// issuingCA returns the issuing CA named name.
func (c *Config) issuingCA(name string) (IssuingCAConfig, bool) {
	for _, ca := range c.IssuingCAs {
		if ca.Name == name {
			return ca, true
		}
	}
	return IssuingCAConfig{}, false
}
