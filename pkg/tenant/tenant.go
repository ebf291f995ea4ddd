// Package tenant authenticates API callers by bearer token and says which
// issuers and profiles each may use.
//
// Tokens are stored as their SHA-256 (hex), never in clear. A presented
// token is hashed and compared with every tenant's hash in constant time,
// so neither the comparison nor which tenant matched shows in the timing.
package tenant

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/certmill/certmill/pkg/config"
)

// Tenant is one customer: a token and the issuers and profiles it may use.
type Tenant struct {
	// Name is the tenant's id, stored with every certificate it gets.
	Name string `yaml:"name"`
	// TokenSHA256 is the hex SHA-256 of the bearer token
	// (printf %s "$TOKEN" | sha256sum).
	TokenSHA256 string `yaml:"token_sha256"`
	// Issuers maps an issuer name to the profiles the tenant may use there.
	Issuers map[string][]string `yaml:"issuers"`

	hash []byte
}

// Allowed reports whether t may use profile at issuer.
func (t *Tenant) Allowed(issuer, profile string) bool {
	return slices.Contains(t.Issuers[issuer], profile)
}

// MayUseIssuer reports whether t may use any profile of issuer.
func (t *Tenant) MayUseIssuer(issuer string) bool { return len(t.Issuers[issuer]) > 0 }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Set is every tenant.
type Set struct {
	tenants []*Tenant
}

// NewSet checks the tenants and prepares them.
func NewSet(ts []*Tenant) (*Set, error) {
	var p config.Problems
	names := map[string]bool{}
	hashes := map[string]bool{}
	for i, t := range ts {
		if !nameRE.MatchString(t.Name) || names[t.Name] {
			p.Addf("tenants[%d].name: %q is repeated or not 1 to 64 letters, digits, - or _ (it becomes a ledger subject token)", i, t.Name)
		}
		names[t.Name] = true
		h, err := hex.DecodeString(t.TokenSHA256)
		if err != nil || len(h) != sha256.Size {
			p.Addf("tenants[%d].token_sha256: want 64 hex digits (the SHA-256 of the token, not the token)", i)
		}
		if hashes[t.TokenSHA256] {
			p.Addf("tenants[%d].token_sha256: two tenants share a token", i)
		}
		hashes[t.TokenSHA256] = true
		t.hash = h
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &Set{tenants: ts}, nil
}

// HashToken is what TokenSHA256 holds for token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Authenticate returns the tenant whose token is in the Authorization
// header value ("Bearer <token>"), or nil. The scheme is matched without
// regard to case and may be followed by several spaces (RFC 9110 §11.1,
// RFC 6750 §2.1: "Bearer" 1*SP b64token).
func (s *Set) Authenticate(authorization []byte) *Tenant {
	tok, ok := bearerToken(string(authorization))
	if !ok {
		return nil
	}
	h := sha256.Sum256([]byte(tok))
	var found *Tenant
	for _, t := range s.tenants { // every tenant, always: no early exit
		if subtle.ConstantTimeCompare(h[:], t.hash) == 1 {
			found = t
		}
	}
	return found
}

// bearerToken is the token of an Authorization header value with the
// Bearer scheme.
func bearerToken(authorization string) (string, bool) {
	scheme, tok, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// String names the tenant for logs; it never shows the token hash.
func (t *Tenant) String() string { return fmt.Sprintf("tenant %s", t.Name) }
