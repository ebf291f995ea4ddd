// Package lint checks certificates and CRLs with zlint, the independent
// checker certmill trusts at issuance and in tests.
//
// The default set is every zlint lint except those that only concern the
// public Web PKI's own incidents and cost much for nothing here:
// e_cert_issued_by_compromised_emudhra_ca takes about 3.3 ms of the 3.5 ms
// that zlint v3.7.3 spends on one certificate on this machine.
package lint

import (
	"fmt"
	"sort"
	"strings"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	zl "github.com/zmap/zlint/v3/lint"
)

// PublicOnly are lints that certmill never runs: they serve the public
// Web PKI's browser policies and incidents and say nothing about a private
// hierarchy. e_cert_issued_by_compromised_emudhra_ca guards against one
// public CA; n_ct_sct_policy_count_unsatisfied asks for Certificate
// Transparency SCTs, which private device certificates are not logged for.
var PublicOnly = []string{"e_cert_issued_by_compromised_emudhra_ca", "n_ct_sct_policy_count_unsatisfied"}

// Finding is one lint that did not pass.
type Finding struct {
	Lint    string `json:"lint"`
	Status  string `json:"status"` // notice, warn, error or fatal
	Source  string `json:"source"`
	Details string `json:"details,omitempty"`
}

func (f Finding) String() string {
	s := f.Status + " " + f.Lint
	if f.Details != "" {
		s += ": " + f.Details
	}
	return s
}

// Linter runs a fixed set of lints. It is safe for concurrent use.
type Linter struct {
	reg zl.Registry
	// accepted notices, by lint name, that Problems does not report
	accepted map[string]bool
}

// Options choose the lint set. The zero value runs every lint but PublicOnly.
type Options struct {
	// Exclude names lints to skip, in addition to PublicOnly.
	Exclude []string
	// AcceptNotices names notices that are expected and written down.
	AcceptNotices []string
	// Config is zlint's TOML lint configuration, for lints that take one
	// (e_crl_next_update_invalid's SubscriberCRL, say).
	Config string
}

// CACRLConfig tells zlint that a CRL covers CA certificates only, so its
// nextUpdate may be 12 months away instead of 10 days (CA/B BR §4.9.7).
const CACRLConfig = "[e_crl_next_update_invalid]\nSubscriberCRL = false\n"

// New builds a Linter.
func New(opts Options) (*Linter, error) {
	reg, err := zl.GlobalRegistry().Filter(zl.FilterOptions{
		ExcludeNames: append(append([]string{}, PublicOnly...), opts.Exclude...),
	})
	if err != nil {
		return nil, fmt.Errorf("lint: %w", err)
	}
	if opts.Config != "" {
		c, err := zl.NewConfigFromString(opts.Config)
		if err != nil {
			return nil, fmt.Errorf("lint: configuration: %w", err)
		}
		reg.SetConfiguration(c)
	}
	// zlint asks the registry for its sorted names on every certificate,
	// only to size a map: about an eighth of its time per certificate.
	reg = sortedOnce{Registry: reg, names: reg.Names()}
	acc := map[string]bool{}
	for _, n := range opts.AcceptNotices {
		acc[n] = true
	}
	return &Linter{reg: reg, accepted: acc}, nil
}

// sortedOnce is a registry whose Names are sorted once.
type sortedOnce struct {
	zl.Registry
	names []string
}

func (r sortedOnce) Names() []string { return r.names }

// Certificate lints a DER certificate and returns every finding of notice
// level or worse, sorted by lint name.
func (l *Linter) Certificate(der []byte) ([]Finding, error) {
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("lint: parse certificate: %w", err)
	}
	return findings(zlint.LintCertificateEx(c, l.reg)), nil
}

// RevocationList lints a DER CRL like Certificate.
func (l *Linter) RevocationList(der []byte) ([]Finding, error) {
	c, err := zx509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("lint: parse CRL: %w", err)
	}
	return findings(zlint.LintRevocationListEx(c, l.reg)), nil
}

// Problems returns the findings that should stop issuance: warnings,
// errors, fatals, and notices not accepted in Options, as one error.
func (l *Linter) Problems(fs []Finding) error {
	var bad []string
	for _, f := range fs {
		if f.Status == "notice" && l.accepted[f.Lint] {
			continue
		}
		bad = append(bad, f.String())
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("lint: %s", strings.Join(bad, "; "))
}

var statusName = map[zl.LintStatus]string{zl.Notice: "notice", zl.Warn: "warn", zl.Error: "error", zl.Fatal: "fatal"}

func findings(rs *zlint.ResultSet) []Finding {
	var out []Finding
	for name, r := range rs.Results {
		if r.Status < zl.Notice {
			continue
		}
		out = append(out, Finding{
			Lint:    name,
			Status:  statusName[r.Status],
			Source:  string(r.LintMetadata.Source),
			Details: r.Details,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Lint < out[j].Lint })
	return out
}

// CheckCertificate lints a DER certificate and returns Problems' verdict.
func (l *Linter) CheckCertificate(der []byte) error {
	fs, err := l.Certificate(der)
	if err != nil {
		return err
	}
	return l.Problems(fs)
}

// CheckRevocationList lints a DER CRL and returns Problems' verdict.
func (l *Linter) CheckRevocationList(der []byte) error {
	fs, err := l.RevocationList(der)
	if err != nil {
		return err
	}
	return l.Problems(fs)
}
