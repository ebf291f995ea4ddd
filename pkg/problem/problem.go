// Package problem is certmill's one place where errors become RFC 9457
// problem details (application/problem+json). Type URIs are stable URNs
// under urn:certmill:problem: so that clients can branch on them; Detail
// says what went wrong and what to do, and never carries internal detail
// (that goes to the log).
package problem

import (
	"encoding/json"
	"fmt"
)

// ContentType is RFC 9457's media type.
const ContentType = "application/problem+json"

// Prefix starts every type URI.
const Prefix = "urn:certmill:problem:"

// Types, by the name after Prefix.
const (
	BadRequest        = "bad-request"
	Unauthorized      = "unauthorized"
	Forbidden         = "forbidden"
	NotFound          = "not-found"
	UnsupportedMedia  = "unsupported-media-type"
	TooLarge          = "request-too-large"
	TooManyCSRs       = "too-many-csrs"
	BadCSR            = "bad-csr"
	BadCSRSignature   = "bad-csr-signature"
	Rejected          = "rejected-by-profile"
	DuplicateKey      = "duplicate-public-key"
	IdempotencyReused = "idempotency-key-reused"
	IdempotencyNeeded = "idempotency-key-required"
	Timeout           = "request-timeout"
	Unavailable       = "unavailable"
	Internal          = "internal"
	BadReason         = "bad-revocation-reason"
	LintFailed        = "lint-failed"
	MethodNotAllowed  = "method-not-allowed"
)

var titles = map[string]string{
	BadRequest: "Bad request", Unauthorized: "Missing or wrong bearer token", Forbidden: "Not yours",
	NotFound: "Not found", UnsupportedMedia: "Unsupported content type", TooLarge: "Request too large",
	TooManyCSRs: "Too many CSRs in one batch", BadCSR: "Malformed CSR", BadCSRSignature: "CSR signature does not verify",
	Rejected: "CSR does not fit the profile", DuplicateKey: "Public key repeated in the batch",
	IdempotencyReused: "Idempotency key reused with another request", IdempotencyNeeded: "Idempotency-Key header required",
	Timeout: "Request too slow", Unavailable: "Temporarily unavailable", Internal: "Internal error",
	BadReason: "Revocation reason not accepted", LintFailed: "Certificate failed lint",
	MethodNotAllowed: "Method not allowed",
}

// Problem is an RFC 9457 problem details object. Index, for per-CSR
// problems in a batch, is an extension member.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Index    *int   `json:"index,omitempty"`
}

// New makes a problem of the named type.
func New(name string, status int, format string, args ...any) *Problem {
	return &Problem{Type: Prefix + name, Title: titles[name], Status: status, Detail: fmt.Sprintf(format, args...)}
}

// Error lets a Problem travel as an error.
func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// Name is the type without Prefix.
func (p *Problem) Name() string { return p.Type[len(Prefix):] }

// JSON encodes the problem.
func (p *Problem) JSON() []byte {
	b, _ := json.Marshal(p)
	return b
}
