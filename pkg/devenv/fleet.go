package devenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/certmill/certmill/pkg/profile"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/serial"
)

// Keygen plays the manufacturer's key-generation server: n P-256 key pairs
// and CSRs for device ids prefix-00001... in out (keys 0600).
func Keygen(out, prefix string, n int) error {
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				id := fmt.Sprintf("%s-%05d", prefix, i)
				k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id},
					URIs: []*url.URL{{Scheme: "urn", Opaque: "dev:ops:acme-" + id}}}, k)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				kb, _ := x509.MarshalECPrivateKey(k)
				os.WriteFile(filepath.Join(out, id+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
				if err := os.WriteFile(filepath.Join(out, id+".csr"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// FleetReport is what a simulated fleet saw.
type FleetReport struct {
	Queries   int           `json:"queries"`
	Good      int           `json:"good"`
	Revoked   int           `json:"revoked"`
	Unknown   int           `json:"unknown"`
	Errors    int           `json:"errors"`
	PerSecond float64       `json:"queries_per_second"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
}

// loadCerts reads every *.pem certificate in dir but chain.pem.
func loadCerts(dir string) ([]*x509.Certificate, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	var out []*x509.Certificate
	for _, f := range files {
		if filepath.Base(f) == "chain.pem" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ask sends one OCSP request and verifies the signed answer.
func ask(c *http.Client, ocspURL string, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	der, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Post(ocspURL, "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	return ocsp.ParseResponseForCert(body, leaf, issuer)
}

// Fleet plays endpoints: workers ask OCSP about `queries` certificates
// sampled from certDir and verify every answer's signature.
func Fleet(ocspURL, issuerFile, certDir string, queries, workers int) (*FleetReport, error) {
	issuer, err := profile.ReadCertificate(issuerFile)
	if err != nil {
		return nil, err
	}
	certs, err := loadCerts(certDir)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("fleet: no certificates in %s: %v", certDir, err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	rep := &FleetReport{}
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(queries); i = next.Add(1) - 1 {
				leaf := certs[(i*7919)%int64(len(certs))]
				t := time.Now()
				r, err := ask(c, ocspURL, leaf, issuer)
				d := time.Since(t)
				mu.Lock()
				rep.Queries++
				lat = append(lat, d)
				switch {
				case err != nil:
					rep.Errors++
				case r.Status == ocsp.Good:
					rep.Good++
				case r.Status == ocsp.Revoked:
					rep.Revoked++
				default:
					rep.Unknown++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rep.PerSecond = float64(rep.Queries) / time.Since(start).Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep.P50, rep.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return rep, nil
}

// RevokeDrill revokes n certificates from certDir for keyCompromise
// through the signer's API and polls OCSP until each reads revoked. It
// returns the revoked files' base names and the latencies.
func RevokeDrill(ctx context.Context, cl *client.Client, ocspURL, issuerFile, certDir string, n int) ([]string, []time.Duration, error) {
	issuer, err := profile.ReadCertificate(issuerFile)
	if err != nil {
		return nil, nil, err
	}
	files, _ := filepath.Glob(filepath.Join(certDir, "*.pem"))
	sort.Strings(files)
	var names []string
	var lat []time.Duration
	hc := &http.Client{Timeout: 5 * time.Second}
	for i := 1; len(names) < n && i < len(files); i += max(len(files)/n, 1) {
		if filepath.Base(files[i]) == "chain.pem" {
			continue
		}
		leaf, err := profile.ReadCertificate(files[i])
		if err != nil {
			return nil, nil, err
		}
		start := time.Now()
		if _, err := cl.Revoke(ctx, serial.Hex(leaf.SerialNumber), "keyCompromise", nil); err != nil {
			return nil, nil, err
		}
		for {
			r, err := ask(hc, ocspURL, leaf, issuer)
			if err == nil && r.Status == ocsp.Revoked {
				break
			}
			if time.Since(start) > 5*time.Second {
				return nil, nil, fmt.Errorf("%s: not revoked over OCSP within 5s", files[i])
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		names = append(names, filepath.Base(files[i]))
	}
	return names, lat, nil
}
