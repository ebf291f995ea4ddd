// Package profile turns a CSR into a certificate template by the rules of
// an issuing CA's profile: validity, key usages, EKUs, the key types and
// sizes allowed, and what the subject and SANs may say.
//
// Every template names its issuer's OCSP responder and certificate (AIA),
// its full CRL (CRL distribution point) and its delta CRL (Freshest CRL),
// so that an endpoint can check revocation whichever way it prefers.
package profile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certmill/certmill/pkg/config"
)

// Issuer is one issuing CA as profiles see it.
type Issuer struct {
	// Name is the issuer's short name (manufacturing), as in URLs and the API.
	Name string `yaml:"name"`
	// URLs are what every certificate of this issuer names.
	URLs URLs `yaml:"urls"`
	// Certificate is the issuing CA's certificate (PEM), as the ceremony
	// wrote it; relative to the issuers file. Required by the signer.
	Certificate string `yaml:"certificate"`
	// KeyLabel is the CA key's label on the online token. Required by the signer.
	KeyLabel string `yaml:"key_label"`
	// Profiles by name.
	Profiles map[string]*Profile `yaml:"profiles"`

	freshest pkix.Extension // encoded once by Compile
}

// URLs are the issuer's public endpoints (plain http: their answers are signed).
type URLs struct {
	OCSP      string `yaml:"ocsp"`       // AIA id-ad-ocsp
	CAIssuers string `yaml:"ca_issuers"` // AIA id-ad-caIssuers: the issuer's certificate, DER
	CRL       string `yaml:"crl"`        // CRL distribution point: the full CRL
	DeltaCRL  string `yaml:"delta_crl"`  // Freshest CRL: the delta CRL
}

// Profile is the rules of one kind of certificate.
type Profile struct {
	// ValidityDays is the certificate's lifetime. Required.
	ValidityDays int `yaml:"validity_days"`
	// BackdateSeconds moves notBefore back to absorb clock skew on devices.
	// Default 3600. notAfter is counted from the real time of issuance.
	BackdateSeconds *int `yaml:"backdate_seconds"`
	// KeyUsage names: digitalSignature, keyEncipherment, keyAgreement,
	// contentCommitment, dataEncipherment. Required.
	KeyUsage []string `yaml:"key_usage"`
	// ExtKeyUsage names: serverAuth, clientAuth, codeSigning,
	// emailProtection, timeStamping. Required: a leaf without EKUs may be
	// used for anything.
	ExtKeyUsage []string `yaml:"ext_key_usage"`
	// KeyTypes a CSR may carry: ecdsa-p256, ecdsa-p384, rsa-2048,
	// rsa-3072, rsa-4096, ed25519. Required.
	KeyTypes []string `yaml:"key_types"`
	// Subject says what each attribute may be. Attributes not named are
	// dropped from the CSR's subject.
	Subject SubjectRules `yaml:"subject"`
	// SANs say which subject alternative names a CSR may ask for.
	SANs SANRules `yaml:"sans"`
	// Lint says which certificates zlint sees before the HSM signs:
	// "every" (the default: each one, Boulder's way) or "shape" (the first
	// certificate of each lint.Shape in a batch; the others differ from it
	// only where lint.Shape says the verdict cannot change). A refused
	// shape refuses every CSR of that shape.
	Lint string `yaml:"lint"`
	// LintExclude names zlint lints that do not apply to this profile,
	// each with its reason in the YAML comment beside it.
	LintExclude []string `yaml:"lint_exclude"`

	ku  x509.KeyUsage
	eku []x509.ExtKeyUsage
}

// SubjectRules constrain the subject's attributes.
type SubjectRules struct {
	CommonName         Rule `yaml:"common_name"`
	Organization       Rule `yaml:"organization"`
	OrganizationalUnit Rule `yaml:"organizational_unit"`
	Country            Rule `yaml:"country"`
	SerialNumber       Rule `yaml:"serial_number"`
}

// Rule constrains one value. Fixed wins: the certificate carries it
// whatever the CSR says. Otherwise a value must match Pattern (anchored),
// and Required refuses a CSR without one.
type Rule struct {
	Fixed    string `yaml:"fixed"`
	Pattern  string `yaml:"pattern"`
	Required bool   `yaml:"required"`

	re *regexp.Regexp
}

// SANRules constrain each kind of subject alternative name; a kind with
// no rule is refused.
type SANRules struct {
	DNS   *ListRule `yaml:"dns"`
	URI   *ListRule `yaml:"uri"`
	IP    *ListRule `yaml:"ip"`
	Email *ListRule `yaml:"email"`
	// CommonNameInSAN copies the common name into the SANs of the given
	// kind (dns or uri), as RFC 6125 clients expect.
	CommonNameInSAN string `yaml:"common_name_in_san"`
}

// ListRule constrains a list of values: each matches Pattern (anchored),
// at most Max (default 1), at least 1 if Required.
type ListRule struct {
	Pattern  string `yaml:"pattern"`
	Max      int    `yaml:"max"`
	Required bool   `yaml:"required"`

	re *regexp.Regexp
}

var kuByName = map[string]x509.KeyUsage{
	"digitalSignature":  x509.KeyUsageDigitalSignature,
	"contentCommitment": x509.KeyUsageContentCommitment,
	"keyEncipherment":   x509.KeyUsageKeyEncipherment,
	"dataEncipherment":  x509.KeyUsageDataEncipherment,
	"keyAgreement":      x509.KeyUsageKeyAgreement,
}

var ekuByName = map[string]x509.ExtKeyUsage{
	"serverAuth":      x509.ExtKeyUsageServerAuth,
	"clientAuth":      x509.ExtKeyUsageClientAuth,
	"codeSigning":     x509.ExtKeyUsageCodeSigning,
	"emailProtection": x509.ExtKeyUsageEmailProtection,
	"timeStamping":    x509.ExtKeyUsageTimeStamping,
}

// ekuOIDs are the OIDs of ekuByName's usages (RFC 5280 §4.2.1.12).
var ekuOIDs = map[x509.ExtKeyUsage]asn1.ObjectIdentifier{
	x509.ExtKeyUsageServerAuth:      {1, 3, 6, 1, 5, 5, 7, 3, 1},
	x509.ExtKeyUsageClientAuth:      {1, 3, 6, 1, 5, 5, 7, 3, 2},
	x509.ExtKeyUsageCodeSigning:     {1, 3, 6, 1, 5, 5, 7, 3, 3},
	x509.ExtKeyUsageEmailProtection: {1, 3, 6, 1, 5, 5, 7, 3, 4},
	x509.ExtKeyUsageTimeStamping:    {1, 3, 6, 1, 5, 5, 7, 3, 8},
}

// requestedUsage checks a CSR's requested key usage or extended key usage
// extension against what the profile grants: a CSR may ask for less than
// the profile gives (the certificate carries the profile's), never more.
func (pr *Profile) requestedUsage(ext pkix.Extension) string {
	if ext.Id.Equal(oidKeyUsage) {
		var bits asn1.BitString
		if rest, err := asn1.Unmarshal(ext.Value, &bits); err != nil || len(rest) > 0 {
			return "the requested key usage extension is malformed"
		}
		for i := range bits.BitLength {
			if bits.At(i) == 1 && pr.ku&(1<<i) == 0 {
				return fmt.Sprintf("the CSR asks for key usage %s, which this profile does not grant (it grants %s): leave it out of the CSR or use a profile that grants it", kuName(1<<i), strings.Join(pr.KeyUsage, ", "))
			}
		}
		return ""
	}
	var oids []asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(ext.Value, &oids); err != nil || len(rest) > 0 {
		return "the requested extended key usage extension is malformed"
	}
	for _, o := range oids {
		granted := false
		for _, u := range pr.eku {
			granted = granted || ekuOIDs[u].Equal(o)
		}
		if !granted {
			return fmt.Sprintf("the CSR asks for extended key usage %s, which this profile does not grant (it grants %s): leave it out of the CSR or use a profile that grants it", ekuName(o), strings.Join(pr.ExtKeyUsage, ", "))
		}
	}
	return ""
}

// kuName names a key usage bit as RFC 5280 §4.2.1.3 does.
func kuName(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	for i, n := range names {
		if ku == 1<<i {
			return n
		}
	}
	return fmt.Sprintf("bit %d", ku)
}

func ekuName(o asn1.ObjectIdentifier) string {
	for u, oid := range ekuOIDs {
		if oid.Equal(o) {
			for n, v := range ekuByName {
				if v == u {
					return n
				}
			}
		}
	}
	return o.String()
}

// ExtKeyUsage maps an EKU name as written in YAML (serverAuth,
// clientAuth, codeSigning, emailProtection, timeStamping) to crypto/x509's
// constant.
func ExtKeyUsage(name string) (x509.ExtKeyUsage, bool) {
	u, ok := ekuByName[name]
	return u, ok
}

var keyTypes = []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"}

// Compile checks the issuer and its profiles and prepares them for use.
// It lists every problem at once.
func (iss *Issuer) Compile() error {
	var p config.Problems
	at := "issuers." + iss.Name
	if iss.Name == "" {
		p.Addf("issuer: name is required")
	}
	for _, u := range []struct{ name, v string }{{"ocsp", iss.URLs.OCSP}, {"ca_issuers", iss.URLs.CAIssuers}, {"crl", iss.URLs.CRL}, {"delta_crl", iss.URLs.DeltaCRL}} {
		pu, err := url.Parse(u.v)
		if u.v == "" || err != nil || pu.Scheme != "http" || pu.Host == "" {
			p.Addf("%s.urls.%s: %q is not an absolute http URL (every certificate names it; OCSP and CRLs are served over http)", at, u.name, u.v)
		}
	}
	if len(iss.Profiles) == 0 {
		p.Addf("%s.profiles: at least one is required", at)
	}
	iss.freshest = freshestCRL(iss.URLs.DeltaCRL)
	for name, pr := range iss.Profiles {
		pr.compile(&p, at+".profiles."+name)
	}
	return p.Err()
}

// Lint modes.
const (
	LintEvery = "every"
	LintShape = "shape"
)

func (pr *Profile) compile(p *config.Problems, at string) {
	switch pr.Lint {
	case "":
		pr.Lint = LintEvery
	case LintEvery, LintShape:
	default:
		p.Addf("%s.lint: %q, want every or shape", at, pr.Lint)
	}
	if pr.ValidityDays < 1 {
		p.Addf("%s.validity_days: must be positive", at)
	}
	if pr.BackdateSeconds == nil {
		d := 3600
		pr.BackdateSeconds = &d
	}
	if *pr.BackdateSeconds < 0 || *pr.BackdateSeconds > 86400 {
		p.Addf("%s.backdate_seconds: %d outside 0..86400", at, *pr.BackdateSeconds)
	}
	pr.ku = 0
	if len(pr.KeyUsage) == 0 {
		p.Addf("%s.key_usage: name at least one", at)
	}
	for _, n := range pr.KeyUsage {
		ku, ok := kuByName[n]
		if !ok {
			p.Addf("%s.key_usage: unknown %q (a leaf may not have keyCertSign or cRLSign)", at, n)
		}
		pr.ku |= ku
	}
	pr.eku = nil
	if len(pr.ExtKeyUsage) == 0 {
		p.Addf("%s.ext_key_usage: name at least one", at)
	}
	for _, n := range pr.ExtKeyUsage {
		eku, ok := ekuByName[n]
		if !ok {
			p.Addf("%s.ext_key_usage: unknown %q", at, n)
		}
		pr.eku = append(pr.eku, eku)
	}
	if len(pr.KeyTypes) == 0 {
		p.Addf("%s.key_types: name at least one of %s", at, strings.Join(keyTypes, ", "))
	}
	for _, k := range pr.KeyTypes {
		if !slices.Contains(keyTypes, k) {
			p.Addf("%s.key_types: unknown %q (want %s)", at, k, strings.Join(keyTypes, ", "))
		}
	}
	for _, r := range []struct {
		name string
		r    *Rule
	}{{"common_name", &pr.Subject.CommonName}, {"organization", &pr.Subject.Organization}, {"organizational_unit", &pr.Subject.OrganizationalUnit}, {"country", &pr.Subject.Country}, {"serial_number", &pr.Subject.SerialNumber}} {
		r.r.re = nil
		if r.r.Pattern != "" {
			re, err := regexp.Compile("^(?:" + r.r.Pattern + ")$")
			if err != nil {
				p.Addf("%s.subject.%s.pattern: %v", at, r.name, err)
			}
			r.r.re = re
		}
	}
	for _, r := range []struct {
		name string
		r    *ListRule
	}{{"dns", pr.SANs.DNS}, {"uri", pr.SANs.URI}, {"ip", pr.SANs.IP}, {"email", pr.SANs.Email}} {
		if r.r == nil {
			continue
		}
		if r.r.Max == 0 {
			r.r.Max = 1
		}
		if r.r.Pattern == "" && r.name != "ip" {
			p.Addf("%s.sans.%s.pattern: required, so that a device cannot name any host", at, r.name)
		}
		re, err := regexp.Compile("^(?:" + r.r.Pattern + ")$")
		if err != nil {
			p.Addf("%s.sans.%s.pattern: %v", at, r.name, err)
		}
		r.r.re = re
	}
	switch pr.SANs.CommonNameInSAN {
	case "":
	case "dns":
		if pr.SANs.DNS == nil {
			p.Addf("%s.sans.common_name_in_san: dns, but sans.dns is not allowed", at)
		}
	case "uri":
		if pr.SANs.URI == nil {
			p.Addf("%s.sans.common_name_in_san: uri, but sans.uri is not allowed", at)
		}
	default:
		p.Addf("%s.sans.common_name_in_san: %q, want dns or uri", at, pr.SANs.CommonNameInSAN)
	}
}

// RejectError lists why a CSR does not fit a profile. Its text is safe to
// show to the caller.
type RejectError struct {
	Reasons []string
}

func (e *RejectError) Error() string {
	return "CSR does not fit the profile: " + strings.Join(e.Reasons, "; ")
}

// ErrRejected is what RejectError matches with errors.Is.
var ErrRejected = errors.New("profile: CSR rejected")

// Is makes errors.Is(err, ErrRejected) true for a *RejectError.
func (e *RejectError) Is(target error) bool { return target == ErrRejected }

// KeyType names a public key as profiles do, or "" if it is not one of them.
func KeyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256"
		case elliptic.P384():
			return "ecdsa-p384"
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048, 3072, 4096:
			return fmt.Sprintf("rsa-%d", k.N.BitLen())
		}
	case ed25519.PublicKey:
		return "ed25519"
	}
	return ""
}

// Template checks csr against the profile and returns the certificate to
// sign. csr's signature must have been checked by the caller (proof of
// possession). The serial must come from package serial.
func (iss *Issuer) Template(pr *Profile, csr *x509.CertificateRequest, sn *big.Int, now time.Time) (*x509.Certificate, error) {
	var reasons []string
	reject := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }

	kt := KeyType(csr.PublicKey)
	if !slices.Contains(pr.KeyTypes, kt) {
		if kt == "" {
			kt = fmt.Sprintf("%T", csr.PublicKey)
			if k, ok := csr.PublicKey.(*rsa.PublicKey); ok {
				kt = fmt.Sprintf("rsa-%d", k.N.BitLen())
			}
		}
		reject("key type %s is not allowed (allowed: %s)", kt, strings.Join(pr.KeyTypes, ", "))
	}
	if k, ok := csr.PublicKey.(*rsa.PublicKey); ok && k.E != 65537 {
		reject("RSA public exponent %d is not 65537", k.E)
	}

	subj := pkix.Name{}
	one := func(name string, r Rule, vals []string) []string {
		switch {
		case r.Fixed != "":
			return []string{r.Fixed}
		case len(vals) == 0:
			if r.Required {
				reject("subject %s is required", name)
			}
			return nil
		case r.re == nil:
			reject("subject %s is not allowed in this profile", name)
			return nil
		case len(vals) > 1:
			reject("subject has %d %s values, at most one is allowed", len(vals), name)
			return nil
		case !r.re.MatchString(vals[0]):
			reject("subject %s %q does not match %s", name, vals[0], r.Pattern)
			return nil
		}
		return vals
	}
	cn := one("common_name", pr.Subject.CommonName, nonEmpty(csr.Subject.CommonName))
	if len(cn) == 1 {
		subj.CommonName = cn[0]
	}
	subj.Organization = one("organization", pr.Subject.Organization, csr.Subject.Organization)
	subj.OrganizationalUnit = one("organizational_unit", pr.Subject.OrganizationalUnit, csr.Subject.OrganizationalUnit)
	subj.Country = one("country", pr.Subject.Country, csr.Subject.Country)
	if sn := one("serial_number", pr.Subject.SerialNumber, nonEmpty(csr.Subject.SerialNumber)); len(sn) == 1 {
		subj.SerialNumber = sn[0]
	}

	dns := slices.Clone(csr.DNSNames)
	uris := slices.Clone(csr.URIs)
	if subj.CommonName != "" {
		switch pr.SANs.CommonNameInSAN {
		case "dns":
			if !slices.Contains(dns, subj.CommonName) {
				dns = append([]string{subj.CommonName}, dns...)
			}
		case "uri":
			u, err := url.Parse(subj.CommonName)
			if err != nil || u.Scheme == "" {
				reject("common name %q is not a URI, and this profile puts it in the SANs as one", subj.CommonName)
			} else if !slices.ContainsFunc(uris, func(x *url.URL) bool { return x.String() == u.String() }) {
				uris = append([]*url.URL{u}, uris...)
			}
		}
	}
	var uriStrings, ipStrings []string
	for _, u := range uris {
		uriStrings = append(uriStrings, u.String())
	}
	for _, ip := range csr.IPAddresses {
		ipStrings = append(ipStrings, ip.String())
	}
	list := func(name string, r *ListRule, vals []string) {
		switch {
		case r == nil && len(vals) > 0:
			reject("%s SANs are not allowed in this profile", name)
		case r == nil:
		case len(vals) == 0 && r.Required:
			reject("a %s SAN is required", name)
		case len(vals) > r.Max:
			reject("%d %s SANs, at most %d allowed", len(vals), name, r.Max)
		default:
			for _, v := range vals {
				if r.Pattern != "" && !r.re.MatchString(v) {
					reject("%s SAN %q does not match %s", name, v, r.Pattern)
				}
			}
		}
	}
	list("DNS", pr.SANs.DNS, dns)
	list("URI", pr.SANs.URI, uriStrings)
	list("IP", pr.SANs.IP, ipStrings)
	list("email", pr.SANs.Email, csr.EmailAddresses)

	// Requested extensions other than SANs are not copied into the
	// certificate: the profile decides key usage, EKU and the rest. A
	// requested usage the profile does not grant is refused rather than
	// silently replaced.
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidSAN) && !ext.Id.Equal(oidKeyUsage) && !ext.Id.Equal(oidExtKeyUsage) && !ext.Id.Equal(oidBasicConstraints) {
			reject("requested extension %s is not allowed", ext.Id)
		}
		if ext.Id.Equal(oidKeyUsage) || ext.Id.Equal(oidExtKeyUsage) {
			if why := pr.requestedUsage(ext); why != "" {
				reject("%s", why)
			}
		}
		if ext.Id.Equal(oidBasicConstraints) && isCARequest(ext.Value) {
			reject("a CSR may not ask to be a CA")
		}
	}

	if len(subj.CommonName) > 64 {
		reject("common name longer than 64 characters (RFC 5280 ub-common-name)")
	}
	if subj.CommonName == "" && len(dns)+len(uris)+len(csr.IPAddresses)+len(csr.EmailAddresses) == 0 {
		reject("neither a common name nor a SAN identifies the subject")
	}
	if len(reasons) > 0 {
		return nil, &RejectError{Reasons: reasons}
	}

	now = now.UTC().Truncate(time.Second)
	ips := slices.Clone(csr.IPAddresses)
	if ips == nil {
		ips = []net.IP{}
	}
	t := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               subj,
		NotBefore:             now.Add(-time.Duration(*pr.BackdateSeconds) * time.Second),
		NotAfter:              now.AddDate(0, 0, pr.ValidityDays),
		KeyUsage:              pr.ku,
		ExtKeyUsage:           pr.eku,
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          subjectKeyID(csr),
		DNSNames:              dns,
		URIs:                  uris,
		IPAddresses:           ips,
		EmailAddresses:        csr.EmailAddresses,
		OCSPServer:            []string{iss.URLs.OCSP},
		IssuingCertificateURL: []string{iss.URLs.CAIssuers},
		CRLDistributionPoints: []string{iss.URLs.CRL},
		ExtraExtensions:       []pkix.Extension{iss.freshest},
	}
	if len(t.IPAddresses) == 0 {
		t.IPAddresses = nil
	}
	return t, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

var (
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	// OIDFreshestCRL is id-ce-freshestCRL (RFC 5280 §4.2.1.15).
	OIDFreshestCRL = asn1.ObjectIdentifier{2, 5, 29, 46}
)

func isCARequest(v []byte) bool {
	var bc struct {
		IsCA bool `asn1:"optional"`
		Max  int  `asn1:"optional,default:-1"`
	}
	_, err := asn1.Unmarshal(v, &bc)
	return err != nil || bc.IsCA
}

// RFC 5280 §4.2.1.13 DistributionPoint, with only a fullName URI.
type distributionPointName struct {
	FullName []asn1.RawValue `asn1:"optional,tag:0"`
}
type distributionPoint struct {
	DistributionPoint distributionPointName `asn1:"optional,tag:0"`
}

// DistributionPoints encodes CRLDistributionPoints syntax with one URI,
// as the Freshest CRL extension and a delta CRL's IDP use.
func DistributionPoints(uri string) []byte {
	b, err := asn1.Marshal([]distributionPoint{{DistributionPoint: distributionPointName{
		FullName: []asn1.RawValue{{Tag: 6, Class: asn1.ClassContextSpecific, Bytes: []byte(uri)}},
	}}})
	if err != nil {
		panic(err) // a string always encodes
	}
	return b
}

// freshestCRL is the Freshest CRL extension. RFC 5280 §4.2.1.15: "The
// extension MUST be marked as non-critical by conforming CAs."
func freshestCRL(uri string) pkix.Extension {
	return pkix.Extension{Id: OIDFreshestCRL, Critical: false, Value: DistributionPoints(uri)}
}

// KeyID is the SHA-256 of the subjectPublicKey truncated to 160 bits
// (RFC 7093 §2 method 1).
func KeyID(pub crypto.PublicKey) []byte {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	return KeyIDFromSPKI(spki)
}

func subjectKeyID(csr *x509.CertificateRequest) []byte {
	if id := KeyIDFromSPKI(csr.RawSubjectPublicKeyInfo); id != nil {
		return id
	}
	return KeyID(csr.PublicKey) // a request built in memory
}

// KeyIDFromSPKI is KeyID of a DER SubjectPublicKeyInfo, such as a CSR's
// RawSubjectPublicKeyInfo (Go's parsers accept only the canonical
// encoding, so it is the key's one encoding).
func KeyIDFromSPKI(spki []byte) []byte {
	in := cryptobyte.String(spki)
	var info cryptobyte.String
	var key asn1.BitString
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.SEQUENCE) || !info.ReadASN1BitString(&key) {
		return nil
	}
	h := sha256.Sum256(key.Bytes)
	return h[:20]
}
