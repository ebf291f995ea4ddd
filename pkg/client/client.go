// Package client talks to the signer's /v1 API: batches of CSRs in,
// certificates out, with retries that can never issue twice.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/certmill/certmill/pkg/problem"
)

// Client is a signer API client.
type Client struct {
	URL   string // https://signer:8443
	Token string
	HTTP  *http.Client
	// Retries is how often a batch is retried (same Idempotency-Key) after
	// a network error or a 5xx. Default 5.
	Retries int
}

// New makes a client. caFile, if set, is the PEM bundle that verifies the
// signer's TLS certificate.
func New(url, token, caFile string) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("client: no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{URL: strings.TrimSuffix(url, "/"), Token: token, HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Minute}, Retries: 5}, nil
}

// Error is a problem the API answered.
type Error struct {
	Status  int
	Problem problem.Problem
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Problem.Title, e.Problem.Detail)
}

func (c *Client) do(ctx context.Context, method, path string, hdr map[string]string, body []byte) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, &e.Problem) != nil {
			e.Problem.Detail = strings.TrimSpace(string(b))
		}
		return nil, resp.Header, e
	}
	return b, resp.Header, nil
}

// CSR is one request to submit, named for the files written for it.
type CSR struct {
	Name     string            // base name for the certificate file
	PEM      string            // the CSR
	Metadata map[string]string // device_id and the like
}

// Result is one CSR's outcome.
type Result struct {
	Index       int              `json:"index"`
	Serial      string           `json:"serial,omitempty"`
	Certificate string           `json:"certificate,omitempty"`
	Problem     *problem.Problem `json:"problem,omitempty"`
}

// BatchResponse mirrors the signer's answer.
type BatchResponse struct {
	BatchID  string   `json:"batch_id"`
	Issued   int      `json:"issued"`
	Failed   int      `json:"failed"`
	Replayed bool     `json:"replayed"`
	Results  []Result `json:"results"`
	Chain    string   `json:"chain"`
}

// IdempotencyKey derives a batch's key from what it asks for, so that
// running the same command again after a crash retries instead of
// issuing new certificates.
func IdempotencyKey(issuer, profile string, csrs []CSR, metadata map[string]string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", issuer, profile)
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, metadata[k])
	}
	for _, c := range csrs {
		fmt.Fprintf(h, "%s\x00", c.PEM)
	}
	return "certmill-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// SubmitBatch sends one batch, retrying with the same key on network
// errors and 5xx answers (honouring Retry-After).
func (c *Client) SubmitBatch(ctx context.Context, issuer, profile, key string, metadata map[string]string, csrs []CSR) (*BatchResponse, error) {
	type entry struct {
		CSR      string            `json:"csr"`
		Metadata map[string]string `json:"metadata,omitempty"`
	}
	es := make([]entry, len(csrs))
	for i, x := range csrs {
		es[i] = entry{CSR: x.PEM, Metadata: x.Metadata}
	}
	body, err := json.Marshal(map[string]any{"metadata": metadata, "csrs": es})
	if err != nil {
		return nil, err
	}
	hdr := map[string]string{"Content-Type": "application/json", "Idempotency-Key": key}
	path := "/v1/issuers/" + issuer + "/profiles/" + profile + "/batches"
	wait := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		b, h, err := c.do(ctx, "POST", path, hdr, body)
		if err == nil {
			var r BatchResponse
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("client: bad answer: %w", err)
			}
			return &r, nil
		}
		var apiErr *Error
		retryable := !errors.As(err, &apiErr) || apiErr.Status >= 500
		if !retryable || attempt >= c.Retries || ctx.Err() != nil {
			return nil, err
		}
		if h != nil {
			if s := h.Get("Retry-After"); s != "" {
				var secs int
				if _, e := fmt.Sscanf(s, "%d", &secs); e == nil && secs > 0 && secs < 300 {
					wait = time.Duration(secs) * time.Second
				}
			}
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// Get fetches a certificate: accept is application/json,
// application/x-pem-file or application/pkix-cert.
func (c *Client) Get(ctx context.Context, serial, accept string) ([]byte, error) {
	b, _, err := c.do(ctx, "GET", "/v1/certificates/"+serial, map[string]string{"Accept": accept}, nil)
	return b, err
}

// List fetches every page of GET /v1/certificates for a filter given as
// query values (batch_id, or metadata.<key>), calling page with each
// page's raw JSON ({"certificates": [...], "next": ...}).
func (c *Client) List(ctx context.Context, filter url.Values, page func([]byte) error) error {
	q := url.Values{}
	for k, v := range filter {
		q[k] = v
	}
	q.Set("limit", "1000")
	for {
		b, _, err := c.do(ctx, "GET", "/v1/certificates?"+q.Encode(), map[string]string{"Accept": "application/json"}, nil)
		if err != nil {
			return err
		}
		if err := page(b); err != nil {
			return err
		}
		var p struct {
			Next string `json:"next"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("certmill: a listing page: %w", err)
		}
		if p.Next == "" {
			return nil
		}
		q.Set("after", p.Next)
	}
}

// Revoke revokes a certificate with an RFC 5280 reason name.
func (c *Client) Revoke(ctx context.Context, serial, reason string, invalidity *time.Time) ([]byte, error) {
	body, _ := json.Marshal(map[string]any{"reason": reason, "invalidity_date": invalidity})
	b, _, err := c.do(ctx, "POST", "/v1/certificates/"+serial+"/revoke", map[string]string{"Content-Type": "application/json"}, body)
	return b, err
}

// ReadCSRs reads CSR files (PEM) from files and folders; a folder gives
// its *.csr and *.pem files, sorted.
func ReadCSRs(paths []string) ([]CSR, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		for _, pat := range []string{"*.csr", "*.pem"} {
			m, _ := filepath.Glob(filepath.Join(p, pat))
			files = append(files, m...)
		}
	}
	sort.Strings(files)
	var out []CSR
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		out = append(out, CSR{Name: name, PEM: string(b), Metadata: map[string]string{"device_id": name}})
	}
	if len(out) == 0 {
		return nil, errors.New("client: no CSR files (*.csr, *.pem) found")
	}
	return out, nil
}
