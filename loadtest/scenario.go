package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/certmill/certmill/pkg/profile"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/config"
)

// File is a scenario file.
type File struct {
	Target    Target     `yaml:"target"`
	Scenarios []Scenario `yaml:"scenarios"`
}

// Target says where the services are and what they issued.
type Target struct {
	OCSP       string `yaml:"ocsp"`        // http://127.0.0.1:8081/manufacturing
	CRL        string `yaml:"crl"`         // http://127.0.0.1:8082/manufacturing.crl
	Signer     string `yaml:"signer"`      // http://127.0.0.1:8443
	TokenFile  string `yaml:"token_file"`  // the tenant token, to learn what each certificate's status is
	IssuerCert string `yaml:"issuer_cert"` // PEM
	CertsDir   string `yaml:"certs_dir"`   // issued certificates to ask about
}

// Scenario is one open-loop attack.
type Scenario struct {
	Name string `yaml:"name"`
	// Kind is ocsp (GET requests about sampled certificates, Zipf) or crl
	// (CDN pulls, most of them conditional).
	Kind       string     `yaml:"kind"`
	Stages     []Stage    `yaml:"stages"`
	Sample     int        `yaml:"sample"`       // certificates to ask about; default 1000
	NeverIssue float64    `yaml:"never_issued"` // share of OCSP queries for serials never issued
	Thresholds Thresholds `yaml:"thresholds"`
}

// Stage holds a constant arrival rate for a while.
type Stage struct {
	Rate     int           `yaml:"rate"` // requests per second
	Duration time.Duration `yaml:"duration"`
}

// Thresholds fail the run, as k6's do.
type Thresholds struct {
	P99       time.Duration `yaml:"p99"`        // 0: none
	ErrorRate float64       `yaml:"error_rate"` // errors and failed checks over requests
}

const (
	maxTotal = 5 * time.Minute // every run stops by itself
	maxRate  = 50_000
)

// Validate lists every problem.
func (f *File) Validate() error {
	var p config.Problems
	total := time.Duration(0)
	for i, s := range f.Scenarios {
		if s.Kind != "ocsp" && s.Kind != "crl" {
			p.Addf("scenarios[%d].kind: %q, want ocsp or crl", i, s.Kind)
		}
		if len(s.Stages) == 0 {
			p.Addf("scenarios[%d].stages: at least one", i)
		}
		for _, st := range s.Stages {
			if st.Rate < 1 || st.Rate > maxRate || st.Duration <= 0 {
				p.Addf("scenarios[%d]: stage rate 1..%d and a positive duration", i, maxRate)
			}
			total += st.Duration
		}
	}
	if total > maxTotal {
		p.Addf("scenarios: %s in all, at most %s", total, maxTotal)
	}
	for _, u := range []string{f.Target.OCSP, f.Target.CRL, f.Target.Signer} {
		if u != "" && !loopback(u) {
			p.Addf("target %q: load goes to loopback addresses only", u)
		}
	}
	return p.Err()
}

func loopback(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Load reads a scenario file; relative paths are relative to it.
func Load(path string) (*File, error) {
	f := &File{}
	if err := config.Load(path, f); err != nil {
		return nil, err
	}
	config.ResolvePaths(path, &f.Target.TokenFile, &f.Target.IssuerCert, &f.Target.CertsDir)
	return f, nil
}

// Report is one scenario's outcome.
type Report struct {
	Name         string
	Requests     uint64
	Rate         float64
	P50, P99     time.Duration
	Errors       int
	CheckFailed  int
	ErrorRate    float64
	Passed       bool
	FailedReason string
}

// Run runs every scenario in turn.
func Run(f *File) ([]Report, error) {
	var out []Report
	for _, s := range f.Scenarios {
		var r Report
		var err error
		switch s.Kind {
		case "ocsp":
			r, err = runOCSP(f, s)
		case "crl":
			r, err = runCRL(f, s)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// attack runs the stages with tr and feeds each result to check, which
// returns false when the answer is wrong.
func attack(s Scenario, tr vegeta.Targeter, check func(*vegeta.Result) bool) Report {
	var m vegeta.Metrics
	rep := Report{Name: s.Name}
	for _, st := range s.Stages {
		// An attacker stops itself after one attack: one per stage.
		a := vegeta.NewAttacker(vegeta.Timeout(5*time.Second), vegeta.MaxWorkers(256), vegeta.KeepAlive(true), vegeta.Connections(64))
		for res := range a.Attack(tr, vegeta.ConstantPacer{Freq: st.Rate, Per: time.Second}, st.Duration, s.Name) {
			m.Add(res)
			if res.Error != "" || res.Code >= 400 || res.Code == 0 {
				rep.Errors++
			} else if !check(res) {
				rep.CheckFailed++
			}
		}
	}
	m.Close()
	rep.Requests, rep.Rate = m.Requests, m.Throughput
	rep.P50, rep.P99 = m.Latencies.P50, m.Latencies.P99
	if rep.Requests > 0 {
		rep.ErrorRate = float64(rep.Errors+rep.CheckFailed) / float64(rep.Requests)
	}
	rep.Passed = true
	if th := s.Thresholds; th.P99 > 0 && rep.P99 > th.P99 {
		rep.Passed, rep.FailedReason = false, fmt.Sprintf("p99 %s > %s", rep.P99, th.P99)
	}
	if rep.ErrorRate > s.Thresholds.ErrorRate {
		rep.Passed = false
		rep.FailedReason = strings.TrimPrefix(rep.FailedReason+"; ", "; ") + fmt.Sprintf("error rate %.4f > %.4f", rep.ErrorRate, s.Thresholds.ErrorRate)
	}
	return rep
}

// runOCSP asks about sampled certificates whose status it first learns
// from the signer's API, and about never-issued serials (unknown).
func runOCSP(f *File, s Scenario) (Report, error) {
	issuer, err := profile.ReadCertificate(f.Target.IssuerCert)
	if err != nil {
		return Report{}, err
	}
	token, err := os.ReadFile(f.Target.TokenFile)
	if err != nil {
		return Report{}, err
	}
	files, _ := filepath.Glob(filepath.Join(f.Target.CertsDir, "*.pem"))
	if s.Sample == 0 {
		s.Sample = 1000
	}
	expect := map[string]int{} // URL -> ocsp status
	var urls []string
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, file := range files {
		if len(urls) >= s.Sample {
			break
		}
		c, err := profile.ReadCertificate(file)
		if err != nil || c.IsCA {
			continue
		}
		status, err := ledgerStatus(hc, f.Target.Signer, strings.TrimSpace(string(token)), c.SerialNumber)
		if err != nil {
			return Report{}, err
		}
		u, err := ocspURL(f.Target.OCSP, c.SerialNumber, issuer)
		if err != nil {
			return Report{}, err
		}
		expect[u] = status
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return Report{}, errors.New("no certificates to ask about in " + f.Target.CertsDir)
	}
	var never []string
	for range max(1, len(urls)/4) {
		b := make([]byte, 16)
		rand.Read(b)
		b[0] = b[0]&0x7f | 0x40
		u, _ := ocspURL(f.Target.OCSP, new(big.Int).SetBytes(b), issuer)
		expect[u] = ocsp.Unknown
		never = append(never, u)
	}
	var mu sync.Mutex
	rng := mrand.New(mrand.NewPCG(7, 9))
	zipf := mrand.NewZipf(rng, 1.1, 1, uint64(len(urls)-1))
	tr := func(t *vegeta.Target) error {
		mu.Lock()
		defer mu.Unlock()
		t.Method = "GET"
		if rng.Float64() < s.NeverIssue {
			t.URL = never[rng.IntN(len(never))]
		} else {
			t.URL = urls[zipf.Uint64()]
		}
		return nil
	}
	return attack(s, tr, func(r *vegeta.Result) bool {
		resp, err := ocsp.ParseResponse(r.Body, issuer)
		return err == nil && resp.Status == expect[r.URL]
	}), nil
}

func ocspURL(base string, sn *big.Int, issuer *x509.Certificate) (string, error) {
	der, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: sn}, issuer, nil)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(base, "/") + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(der)), nil
}

// ledgerStatus asks the signer's API what the ledger says of a serial.
func ledgerStatus(hc *http.Client, signer, token string, sn *big.Int) (int, error) {
	req, _ := http.NewRequest("GET", strings.TrimSuffix(signer, "/")+"/v1/certificates/"+fmt.Sprintf("%x", sn), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var c struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&c); err != nil || resp.StatusCode != 200 {
		return 0, fmt.Errorf("lookup %x: %d %v", sn, resp.StatusCode, err)
	}
	if c.Status == "revoked" {
		return ocsp.Revoked, nil
	}
	return ocsp.Good, nil
}

// runCRL pulls the CRL as a CDN does: 9 of 10 requests conditional.
func runCRL(f *File, s Scenario) (Report, error) {
	resp, err := http.Get(f.Target.CRL)
	if err != nil {
		return Report{}, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	first, err := x509.ParseRevocationList(body)
	if err != nil {
		return Report{}, fmt.Errorf("the CRL at %s does not parse: %w", f.Target.CRL, err)
	}
	etag := resp.Header.Get("ETag")
	var n uint64
	var mu sync.Mutex
	tr := func(t *vegeta.Target) error {
		mu.Lock()
		n++
		cond := n%10 != 0
		mu.Unlock()
		t.Method, t.URL = "GET", f.Target.CRL
		t.Header = http.Header{}
		if cond {
			t.Header.Set("If-None-Match", etag)
		}
		return nil
	}
	return attack(s, tr, func(r *vegeta.Result) bool {
		if r.Code == 304 {
			return true
		}
		crl, err := x509.ParseRevocationList(r.Body)
		return err == nil && crl.Number.Cmp(first.Number) >= 0 && bytes.Equal(crl.RawIssuer, first.RawIssuer)
	}), nil
}

// PrintTable writes the summary.
func PrintTable(w io.Writer, reports []Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\treq/s\tp50\tp99\terrors\tchecks failed\tverdict\t")
	for _, r := range reports {
		verdict := "pass"
		if !r.Passed {
			verdict = "FAIL: " + r.FailedReason
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%d\t%s\t\n", r.Name, r.Requests, r.Rate, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors, r.CheckFailed, verdict)
	}
	tw.Flush()
}
