package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certmill/certmill/pkg/hsm"
	"github.com/certmill/certmill/pkg/lint"
	"github.com/certmill/certmill/pkg/problem"
	"github.com/certmill/certmill/pkg/profile"
	"github.com/certmill/certmill/pkg/serial"
	"github.com/certmill/certmill/pkg/tbs"
)

// issuer is one issuing CA, ready to sign.
type issuer struct {
	name string
	prof *profile.Issuer
	cert *x509.Certificate
	key  crypto.Signer // in the HSM
	// lintParent is the CA certificate with a throwaway in-memory key of
	// the same type, and lintKey that key: each certificate is first
	// signed with it and linted, and only a clean one is signed by the HSM
	// (Boulder's way), so the CA key never signs what zlint refuses.
	lintParent *x509.Certificate
	lintKey    crypto.Signer
	linters    map[string]*lint.Linter // by profile
}

func loadIssuer(p *profile.Issuer, h *hsm.HSM) (*issuer, error) {
	if p.Certificate == "" || p.KeyLabel == "" {
		return nil, fmt.Errorf("issuer %s: certificate and key_label are required by the signer", p.Name)
	}
	cert, err := p.LoadCertificate()
	if err != nil {
		return nil, err
	}
	key, err := h.Key(p.KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", p.Name, err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		return nil, fmt.Errorf("issuer %s: key %q does not match %s", p.Name, p.KeyLabel, p.Certificate)
	}
	var throwaway crypto.Signer
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		throwaway, err = ecdsa.GenerateKey(pub.Curve, rand.Reader)
	case *rsa.PublicKey:
		throwaway, err = rsa.GenerateKey(rand.Reader, pub.N.BitLen())
	default:
		err = fmt.Errorf("unsupported CA key %T", pub)
	}
	if err != nil {
		return nil, fmt.Errorf("issuer %s: throwaway lint key: %w", p.Name, err)
	}
	parent := *cert
	parent.PublicKey = throwaway.Public()
	is := &issuer{name: p.Name, prof: p, cert: cert, key: key, lintParent: &parent, lintKey: throwaway, linters: map[string]*lint.Linter{}}
	for name, pr := range p.Profiles {
		l, err := lint.New(lint.Options{Exclude: pr.LintExclude})
		if err != nil {
			return nil, err
		}
		is.linters[name] = l
	}
	return is, nil
}

// csrInput is one CSR of a batch as it arrives.
type csrInput struct {
	CSR      string            `json:"csr"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// batchRequest is the body of POST .../batches.
type batchRequest struct {
	Metadata map[string]string `json:"metadata,omitempty"`
	CSRs     []csrInput        `json:"csrs"`
}

// parseCSR accepts PEM or base64 DER and checks the CSR's signature
// (proof of possession).
func parseCSR(s string) (*x509.CertificateRequest, *problem.Problem) {
	s = strings.TrimSpace(s)
	var der []byte
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, rest := pem.Decode([]byte(s))
		if blk == nil || (blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST") {
			return nil, problem.New(problem.BadCSR, http.StatusBadRequest, "not a PEM CERTIFICATE REQUEST block")
		}
		if len(strings.TrimSpace(string(rest))) != 0 {
			return nil, problem.New(problem.BadCSR, http.StatusBadRequest, "more than one PEM block: send one CSR per entry")
		}
		der = blk.Bytes
	} else {
		var err error
		der, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			if der, err = base64.RawURLEncoding.DecodeString(s); err != nil {
				return nil, problem.New(problem.BadCSR, http.StatusBadRequest, "neither PEM nor base64 DER")
			}
		}
	}
	if len(der) > 64<<10 {
		return nil, problem.New(problem.BadCSR, http.StatusBadRequest, "CSR larger than 64 KiB")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, problem.New(problem.BadCSR, http.StatusBadRequest, "cannot parse the CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, problem.New(problem.BadCSRSignature, http.StatusBadRequest, "the CSR's signature does not verify with its own public key (proof of possession failed): %v", err)
	}
	return csr, nil
}

// issueOne turns a checked CSR into a signed certificate: template from
// the profile, a fresh serial, a lint of a copy signed with the throwaway
// key, the HSM signature, and a check of the result.
func (s *Signer) issueOne(is *issuer, profName string, csr *x509.CertificateRequest, set serial.Set, shapes *shapeVerdicts, now time.Time) ([]byte, *x509.Certificate, *problem.Problem, error) {
	pr := is.prof.Profiles[profName]
	sn, err := set.New()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl, err := is.prof.Template(pr, csr, sn, now)
	if err != nil {
		var rej *profile.RejectError
		if errors.As(err, &rej) {
			return nil, nil, problem.New(problem.Rejected, http.StatusUnprocessableEntity, "%s", strings.Join(rej.Reasons, "; ")), nil
		}
		return nil, nil, nil, err
	}
	if tmpl.NotAfter.After(is.cert.NotAfter) {
		tmpl.NotAfter = is.cert.NotAfter // never outlive the issuer
	}
	// The lint's draft (signed with the throwaway key) becomes the
	// prototype whose TBS the HSM signs: byte for byte the TBS that
	// x509.CreateCertificate would make (pkg/tbs), without paying its
	// encoder again for every certificate of a shape.
	var proto *tbs.Prototype
	own := false // proto is this certificate's own draft: its TBS is ours as it is
	if s.cfg.Lint {
		if pr.Lint == profile.LintShape {
			proto, err = shapes.verdict(lint.Shape(tmpl, profile.KeyType(csr.PublicKey)), func() (*tbs.Prototype, error) {
				return s.lintDraft(is, profName, tmpl, csr)
			})
			s.m.lintChecks.WithLabelValues("shape").Inc()
		} else {
			proto, err = s.lintDraft(is, profName, tmpl, csr)
			own = true
		}
		if err != nil {
			return nil, nil, problem.New(problem.LintFailed, http.StatusUnprocessableEntity, "%v (hint: the profile or the CSR must change)", err), nil
		}
	}
	t0 := time.Now()
	var der []byte
	switch {
	case proto != nil && own:
		der, err = s.signTBS(is, proto, proto.Own())
	case proto != nil:
		var t []byte
		if t, err = proto.TBS(tmpl, csr.PublicKey); err == nil {
			der, err = s.signTBS(is, proto, t)
		}
	default:
		// x509.CreateCertificate checks the HSM's signature over the
		// result with the issuer's public key before returning it.
		der, err = x509.CreateCertificate(rand.Reader, tmpl, is.cert, csr.PublicKey, is.key)
	}
	s.m.hsmSeconds.Observe(time.Since(t0).Seconds())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sign: %w", err)
	}
	return der, tmpl, nil, nil // serial and validity are the template's
}

// signTBS has the HSM sign a TBS of the prototype's shape and checks the
// signature with the issuer's public key, as x509.CreateCertificate does.
func (s *Signer) signTBS(is *issuer, proto *tbs.Prototype, t []byte) ([]byte, error) {
	msg := t
	if proto.Hash != 0 {
		h := proto.Hash.New()
		h.Write(t)
		msg = h.Sum(nil)
	}
	sig, err := is.key.Sign(rand.Reader, msg, proto.Hash)
	if err != nil {
		return nil, err
	}
	if err := is.cert.CheckSignature(proto.SignatureAlgorithm, t, sig); err != nil {
		return nil, fmt.Errorf("the HSM's signature does not verify with the issuer's certificate: %w", err)
	}
	return proto.Certificate(t, sig)
}

// lintDraft signs the certificate with the issuer's throwaway key and
// lints it: the CA key never signs what zlint refuses (Boulder's way).
func (s *Signer) lintDraft(is *issuer, profName string, tmpl *x509.Certificate, csr *x509.CertificateRequest) (*tbs.Prototype, error) {
	t0 := time.Now()
	defer func() { s.m.lintSeconds.Observe(time.Since(t0).Seconds()) }()
	s.m.lintChecks.WithLabelValues("zlint").Inc()
	draft, err := x509.CreateCertificate(rand.Reader, tmpl, is.lintParent, csr.PublicKey, is.lintKey)
	if err != nil {
		return nil, fmt.Errorf("cannot build the certificate: %w", err)
	}
	l := is.linters[profName]
	fs, err := l.Certificate(draft)
	if err == nil {
		err = l.Problems(fs)
	}
	if err != nil {
		s.log.Warn("signer: lint refused a certificate", "issuer", is.name, "profile", profName, "err", err)
		return nil, err
	}
	p, err := tbs.New(draft)
	if err != nil {
		// A signature algorithm pkg/tbs does not build: crypto/x509 signs.
		s.log.Debug("signer: no prototype, crypto/x509 encodes each certificate", "issuer", is.name, "err", err)
		return nil, nil
	}
	return p, nil
}

// shapeVerdicts holds zlint's verdict per lint.Shape for one batch, with
// the linted draft as the shape's prototype: the first certificate of a
// shape is linted, the others of that shape wait for its verdict and
// share it.
type shapeVerdicts struct {
	mu sync.Mutex
	m  map[string]*shapeVerdict
}

type shapeVerdict struct {
	once  sync.Once
	proto *tbs.Prototype
	err   error
}

func (v *shapeVerdicts) verdict(shape string, lint func() (*tbs.Prototype, error)) (*tbs.Prototype, error) {
	v.mu.Lock()
	if v.m == nil {
		v.m = map[string]*shapeVerdict{}
	}
	e := v.m[shape]
	if e == nil {
		e = &shapeVerdict{}
		v.m[shape] = e
	}
	v.mu.Unlock()
	e.once.Do(func() { e.proto, e.err = lint() })
	return e.proto, e.err
}

// publicKeyID identifies a public key for the duplicate check.
func publicKeyID(pub crypto.PublicKey) string {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(b)
}
