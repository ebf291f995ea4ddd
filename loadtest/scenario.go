package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/certmill/certmill/pkg/config"
	"github.com/certmill/certmill/pkg/profile"
)

// File is a scenario file.
type File struct {
	Target Target `yaml:"target"`
	// Scenarios run one after the other. An entry with parallel: is a
	// group whose scenarios run at the same time, as k6's scenarios do;
	// start_time delays one within its group (k6's startTime).
	Scenarios []Scenario `yaml:"scenarios"`
}

// Target says where the services are and what they issued.
type Target struct {
	OCSP       string `yaml:"ocsp"`        // http://127.0.0.1:8081/manufacturing
	CRL        string `yaml:"crl"`         // http://127.0.0.1:8082/manufacturing.crl
	Signer     string `yaml:"signer"`      // http://127.0.0.1:8443
	TokenFile  string `yaml:"token_file"`  // the tenant token: batches, revocations, and each certificate's status
	IssuerCert string `yaml:"issuer_cert"` // PEM of the issuing CA the OCSP URL answers for
	CertsDir   string `yaml:"certs_dir"`   // issued certificates to ask about
	// Issuer and Profile name the signer's issuer (the one IssuerCert is
	// the certificate of) and profile that batch and revoke scenarios get
	// their certificates from. Default manufacturing and device.
	Issuer  string `yaml:"issuer"`
	Profile string `yaml:"profile"`
}

// Scenario is one open-loop attack, or a group of them (Parallel).
type Scenario struct {
	Name string `yaml:"name"`
	// Kind is ocsp (endpoints ask about sampled certificates, Zipf), crl
	// (CDN pulls, most of them conditional), batch (a manufacturer posts
	// batches of fresh CSRs) or revoke (a revocation storm on certificates
	// issued for it before the clock starts).
	Kind string `yaml:"kind"`
	// Parallel makes this entry a group: its scenarios start together.
	// A group has no kind or stages of its own and does not nest.
	Parallel []Scenario `yaml:"parallel"`
	// StartTime delays the scenario after its group starts. Default 0.
	StartTime time.Duration `yaml:"start_time"`
	// Stages hold constant arrival rates one after the other (requests,
	// batches or revocations per second; fractions allowed).
	Stages     []Stage    `yaml:"stages"`
	Thresholds Thresholds `yaml:"thresholds"`
	// Timeout bounds one request. Default 5s, 60s for batch.
	Timeout time.Duration `yaml:"timeout"`

	// ocsp
	Sample     int     `yaml:"sample"`       // certificates to ask about; default 1000
	NeverIssue float64 `yaml:"never_issued"` // share of queries for serials never issued
	PostShare  float64 `yaml:"post_share"`   // share of queries sent by POST, the rest by GET; default 0
	StormShare float64 `yaml:"storm_share"`  // share of queries about the revoke scenario's certificates in the same group

	// batch
	BatchSize int `yaml:"batch_size"` // CSRs per batch; default 100

	// revoke
	Reason string `yaml:"reason"` // RFC 5280 reason name; default keyCompromise
}

// Stage holds a constant arrival rate for a while.
type Stage struct {
	Rate     float64       `yaml:"rate"` // per second
	Duration time.Duration `yaml:"duration"`
}

// Thresholds fail the run, as k6's do.
type Thresholds struct {
	P99       time.Duration `yaml:"p99"`        // 0: none
	ErrorRate float64       `yaml:"error_rate"` // errors and failed checks over requests
	// RevokedWithin (revoke only) bounds, for every revocation, the time
	// from the API's answer to the first OCSP answer that says revoked.
	// Default 1s (DESIGN.md invariant 5).
	RevokedWithin time.Duration `yaml:"revoked_within"`
}

const (
	maxTotal      = 5 * time.Minute // every run stops by itself
	maxTimeout    = 2 * time.Minute
	maxRate       = 50_000
	maxBatchSize  = 10_000 // the signer's default max_csrs
	maxCSRs       = 50_000 // made in advance, per scenario: about 2 KB of memory each with its body
	maxRevocation = 10_000 // certificates issued for a storm
)

var kinds = map[string]bool{"ocsp": true, "crl": true, "batch": true, "revoke": true}

// Defaults fills unset fields; config.Load calls it, and so does Run.
func (f *File) Defaults() {
	if f.Target.Issuer == "" {
		f.Target.Issuer = "manufacturing"
	}
	if f.Target.Profile == "" {
		f.Target.Profile = "device"
	}
	for i := range f.Scenarios {
		defaultScenario(&f.Scenarios[i])
		for j := range f.Scenarios[i].Parallel {
			defaultScenario(&f.Scenarios[i].Parallel[j])
		}
	}
}

func defaultScenario(s *Scenario) {
	if s.Kind == "" {
		return
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Second
		if s.Kind == "batch" {
			s.Timeout = time.Minute
		}
	}
	if s.Kind == "ocsp" && s.Sample == 0 {
		s.Sample = 1000
	}
	if s.Kind == "batch" && s.BatchSize == 0 {
		s.BatchSize = 100
	}
	if s.Kind == "revoke" {
		if s.Reason == "" {
			s.Reason = "keyCompromise"
		}
		if s.Thresholds.RevokedWithin == 0 {
			s.Thresholds.RevokedWithin = time.Second
		}
	}
}

// hits is how many requests a scenario's stages send.
func (s Scenario) hits() int { return int(newStagedPacer(s.Stages).total) }

func (s Scenario) length() time.Duration {
	d := s.StartTime
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// Validate lists every problem.
func (f *File) Validate() error {
	var p config.Problems
	total := time.Duration(0)
	names := map[string]bool{}
	for i, e := range f.Scenarios {
		where := fmt.Sprintf("scenarios[%d]", i)
		group := []Scenario{e}
		if len(e.Parallel) > 0 {
			if e.Kind != "" || len(e.Stages) > 0 {
				p.Addf("%s: a parallel group has no kind or stages of its own", where)
			}
			group = e.Parallel
		}
		revokes, longest := 0, time.Duration(0)
		for j, s := range group {
			w := where
			if len(e.Parallel) > 0 {
				w = fmt.Sprintf("%s.parallel[%d]", where, j)
			}
			if s.Kind == "revoke" {
				revokes++
			}
			f.validateScenario(&p, w, s, names)
			longest = max(longest, s.length())
		}
		if revokes > 1 {
			p.Addf("%s: at most one revoke scenario per group", where)
		}
		for j, s := range group {
			if s.StormShare > 0 && revokes == 0 {
				p.Addf("%s.parallel[%d]: storm_share needs a revoke scenario in the same parallel group", where, j)
			}
		}
		total += longest
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

func (f *File) validateScenario(p *config.Problems, w string, s Scenario, names map[string]bool) {
	if len(s.Parallel) > 0 {
		p.Addf("%s: parallel groups do not nest", w)
		return
	}
	if !kinds[s.Kind] {
		p.Addf("%s.kind: %q, want ocsp, crl, batch or revoke", w, s.Kind)
	}
	if s.Name == "" || names[s.Name] {
		p.Addf("%s.name: %q, want a name no other scenario has", w, s.Name)
	}
	names[s.Name] = true
	if len(s.Stages) == 0 {
		p.Addf("%s.stages: at least one", w)
	}
	for _, st := range s.Stages {
		if !(st.Rate > 0 && st.Rate <= maxRate) || st.Duration <= 0 {
			p.Addf("%s: stage rate above 0 and at most %d, and a positive duration", w, maxRate)
		}
	}
	if s.StartTime < 0 || s.Timeout < 0 || s.Timeout > maxTimeout {
		p.Addf("%s: start_time not negative, timeout at most %s", w, maxTimeout)
	}
	for _, v := range []float64{s.NeverIssue, s.PostShare, s.StormShare, s.Thresholds.ErrorRate} {
		if v < 0 || v > 1 {
			p.Addf("%s: shares and error rates lie in [0, 1]", w)
			break
		}
	}
	if s.NeverIssue+s.StormShare > 1 {
		p.Addf("%s: never_issued + storm_share at most 1", w)
	}
	if s.Kind != "ocsp" && (s.NeverIssue != 0 || s.PostShare != 0 || s.StormShare != 0 || s.Sample != 0) {
		p.Addf("%s: sample, never_issued, post_share and storm_share are for ocsp", w)
	}
	if s.Kind != "batch" && s.BatchSize != 0 {
		p.Addf("%s: batch_size is for batch", w)
	}
	if s.Kind != "revoke" && (s.Reason != "" || s.Thresholds.RevokedWithin != 0) {
		p.Addf("%s: reason and revoked_within are for revoke", w)
	}
	need := func(what, v string) {
		if v == "" {
			p.Addf("%s: kind %s needs target.%s", w, s.Kind, what)
		}
	}
	switch s.Kind {
	case "ocsp":
		need("ocsp", f.Target.OCSP)
		need("signer", f.Target.Signer)
		need("token_file", f.Target.TokenFile)
		need("issuer_cert", f.Target.IssuerCert)
		need("certs_dir", f.Target.CertsDir)
	case "crl":
		need("crl", f.Target.CRL)
	case "batch":
		need("signer", f.Target.Signer)
		need("token_file", f.Target.TokenFile)
		if s.BatchSize < 1 || s.BatchSize > maxBatchSize {
			p.Addf("%s.batch_size: 1 to %d", w, maxBatchSize)
		} else if n := s.hits() * s.BatchSize; n > maxCSRs {
			p.Addf("%s: %d CSRs to make in advance, at most %d: lower the rate, the durations or batch_size", w, n, maxCSRs)
		}
	case "revoke":
		need("signer", f.Target.Signer)
		need("token_file", f.Target.TokenFile)
		need("ocsp", f.Target.OCSP)
		need("issuer_cert", f.Target.IssuerCert)
		if n := s.hits(); n > maxRevocation {
			p.Addf("%s: %d revocations, at most %d", w, n, maxRevocation)
		}
		if _, ok := reasons[s.Reason]; s.Reason != "" && !ok {
			p.Addf("%s.reason: %q is not an RFC 5280 reason for a leaf", w, s.Reason)
		}
	}
}

// reasons the signer accepts for a leaf (RFC 5280 §5.3.1 without
// certificateHold, cACompromise and aACompromise).
var reasons = map[string]bool{"unspecified": true, "keyCompromise": true, "affiliationChanged": true,
	"superseded": true, "cessationOfOperation": true, "privilegeWithdrawn": true}

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
	Name         string        `json:"name"`
	Kind         string        `json:"kind"`
	Group        int           `json:"group"` // index in the file; scenarios of one parallel group share it
	Requests     uint64        `json:"requests"`
	Dropped      uint64        `json:"dropped"` // planned but not sent: the generator fell behind (k6's dropped_iterations)
	Rate         float64       `json:"rate"`    // answers per second
	P50          time.Duration `json:"p50"`
	P99          time.Duration `json:"p99"`
	Max          time.Duration `json:"max"`
	Errors       int           `json:"errors"`        // transport errors and 4xx/5xx
	CheckFailed  int           `json:"checks_failed"` // answers that came back but were wrong
	ErrorRate    float64       `json:"error_rate"`
	Passed       bool          `json:"passed"`
	FailedReason string        `json:"failed_reason,omitempty"`
	Notes        []string      `json:"notes,omitempty"` // what the kind measured besides latency

	scenario Scenario
	start    time.Time     // the group's clock started
	elapsed  time.Duration // from the first request to the last answer
	samples  []sample      // every request, for the plots
	extra    []sample      // a kind's own latencies (revoke: answer to OCSP revoked)
	extraFor string        // what extra holds
}

// sample is one request: when it left (since its group started), how
// long the answer took, and whether it failed.
type sample struct {
	at, lat time.Duration
	failed  bool
}

func (r *Report) fail(format string, args ...any) {
	r.Passed = false
	if r.FailedReason != "" {
		r.FailedReason += "; "
	}
	r.FailedReason += fmt.Sprintf(format, args...)
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// kind is a scenario kind, ready to run: everything that must happen
// before the clock starts (CSRs, certificates to revoke, statuses to
// expect) has happened when it is made.
type kind interface {
	targeter() vegeta.Targeter
	// check says whether an answer that came back without error is right.
	// It is called from one goroutine per scenario.
	check(*vegeta.Result) bool
	// finish runs when every scenario of the group has stopped; it adds
	// notes and fails the report on the kind's own thresholds.
	finish(*Report)
	workers() uint64
}

// env is what the scenarios of one run share.
type env struct {
	f     *File
	runID string
	hc    *http.Client

	mu struct {
		sync.Mutex
		token  string
		issuer *x509.Certificate
		status map[string]int // serial hex -> OCSP status the ledger gives
	}
}

func (e *env) token() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.token == "" {
		b, err := os.ReadFile(e.f.Target.TokenFile)
		if err != nil {
			return "", err
		}
		e.mu.token = strings.TrimSpace(string(b))
	}
	return e.mu.token, nil
}

func (e *env) issuer() (*x509.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.issuer == nil {
		c, err := profile.ReadCertificate(e.f.Target.IssuerCert)
		if err != nil {
			return nil, err
		}
		e.mu.issuer = c
	}
	return e.mu.issuer, nil
}

// Result is a whole run.
type Result struct {
	RunID   string    `json:"run_id"` // also the lot of every certificate the run issued
	Started time.Time `json:"started"`
	Reports []Report  `json:"reports"`
}

// Passed says whether every threshold held.
func (r *Result) Passed() bool {
	for _, x := range r.Reports {
		if !x.Passed {
			return false
		}
	}
	return true
}

// Run runs the scenarios in turn, the scenarios of a parallel group at once.
func Run(f *File) (*Result, error) {
	f.Defaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 3)
	rand.Read(b)
	now := time.Now()
	e := &env{f: f, runID: now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b),
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	res := &Result{RunID: e.runID, Started: now}
	for i, s := range f.Scenarios {
		group := s.Parallel
		if len(group) == 0 {
			group = []Scenario{s}
		}
		reps, err := runGroup(e, i, group)
		if err != nil {
			return nil, err
		}
		res.Reports = append(res.Reports, reps...)
	}
	return res, nil
}

// runGroup prepares every scenario of a group, then runs them at once.
func runGroup(e *env, gi int, group []Scenario) ([]Report, error) {
	ks := make([]kind, len(group))
	// The storm is made first: the OCSP scenarios beside it ask about its certificates.
	order := make([]int, len(group))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return group[order[a]].Kind == "revoke" && group[order[b]].Kind != "revoke" })
	var st *storm
	for _, i := range order {
		s := group[i]
		tag := fmt.Sprintf("g%d.%d", gi, i) // names the scenario's devices and keys within the run
		var k kind
		var err error
		switch s.Kind {
		case "ocsp":
			k, err = newOCSP(e, s, st)
		case "crl":
			k, err = newCRL(e, s)
		case "batch":
			k, err = newBatch(e, tag, s)
		case "revoke":
			st, err = newStorm(e, tag, s)
			k = st
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		ks[i] = k
	}
	reps := make([]Report, len(group))
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range group {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(s.StartTime)
			reps[i] = attack(s, ks[i], start)
			reps[i].Group = gi
		}()
	}
	wg.Wait()
	for _, i := range order { // the storm judges what the fleet saw before the fleet reports
		ks[i].finish(&reps[i])
	}
	for i := range reps {
		reps[i].verdict()
	}
	return reps, nil
}

// stagedPacer sends a scenario's stages on one schedule: stage i starts
// at the sum of the durations before it, whatever the answers do, and
// sends at its rate from its first instant (as k6's arrival-rate
// executors do; vegeta's ConstantPacer waits one interval first, a whole
// second at 1 batch/s), ceil(rate × duration) requests in all.
type stagedPacer struct {
	stages []Stage
	start  []time.Duration // when each stage starts
	first  []uint64        // hits before each stage
	total  uint64
}

func newStagedPacer(stages []Stage) *stagedPacer {
	p := &stagedPacer{stages: stages}
	var at time.Duration
	for _, st := range stages {
		p.start = append(p.start, at)
		p.first = append(p.first, p.total)
		p.total += uint64(math.Ceil(st.Rate*st.Duration.Seconds() - 1e-9))
		at += st.Duration
	}
	return p
}

// Pace says how long to wait before the next hit, or to stop.
func (p *stagedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.total {
		return 0, true
	}
	i := len(p.stages) - 1
	for i > 0 && hits < p.first[i] {
		i--
	}
	next := p.start[i] + time.Duration(float64(hits-p.first[i])/p.stages[i].Rate*float64(time.Second))
	return max(next-elapsed, 0), false
}

// Rate is the rate of the stage at elapsed.
func (p *stagedPacer) Rate(elapsed time.Duration) float64 {
	for i := len(p.stages) - 1; i >= 0; i-- {
		if elapsed >= p.start[i] {
			return p.stages[i].Rate
		}
	}
	return 0
}

// dropGrace is how late the last requests may leave before they count as dropped.
const dropGrace = 250 * time.Millisecond

// attack runs the stages and checks each answer.
func attack(s Scenario, k kind, start time.Time) Report {
	var m vegeta.Metrics
	rep := Report{Name: s.Name, Kind: s.Kind, scenario: s, start: start}
	a := vegeta.NewAttacker(vegeta.Timeout(s.Timeout), vegeta.MaxWorkers(k.workers()), vegeta.KeepAlive(true), vegeta.Connections(64))
	p := newStagedPacer(s.Stages)
	// The pacer stops after the planned hits; vegeta also stops at the
	// duration, and would drop a last hit that is a few ms late.
	for res := range a.Attack(k.targeter(), p, s.length()-s.StartTime+dropGrace, s.Name) {
		m.Add(res)
		failed := true
		if res.Error != "" || res.Code >= 400 || res.Code == 0 {
			rep.Errors++
		} else if !k.check(res) {
			rep.CheckFailed++
		} else {
			failed = false
		}
		rep.samples = append(rep.samples, sample{at: res.Timestamp.Sub(start), lat: res.Latency, failed: failed})
	}
	m.Close()
	rep.Requests, rep.Rate, rep.elapsed = m.Requests, m.Throughput, m.Duration+m.Wait
	if m.Requests < p.total {
		// Open loop means the planned rate is offered whatever the
		// answers do; when the machine cannot even send it, say so.
		rep.Dropped = p.total - m.Requests
		rep.note("%d of %d planned requests not sent by %s after the schedule's end: the load generator fell behind (a saturated machine), the rate was not offered",
			rep.Dropped, p.total, dropGrace)
	}
	rep.P50, rep.P99, rep.Max = m.Latencies.P50, m.Latencies.P99, m.Latencies.Max
	if rep.Errors > 0 && len(m.Errors) > 0 {
		rep.note("first errors: %s", strings.Join(m.Errors[:min(3, len(m.Errors))], " | "))
	}
	rep.Passed = true
	return rep
}

// verdict applies the thresholds every kind has.
func (r *Report) verdict() {
	if r.Requests > 0 {
		r.ErrorRate = float64(r.Errors+r.CheckFailed) / float64(r.Requests)
	}
	th := r.scenario.Thresholds
	if th.P99 > 0 && r.P99 > th.P99 {
		r.fail("p99 %s > %s", r.P99.Round(time.Microsecond), th.P99)
	}
	if r.ErrorRate > th.ErrorRate {
		r.fail("error rate %.4f > %.4f", r.ErrorRate, th.ErrorRate)
	}
	if r.Requests == 0 {
		r.fail("no request was sent")
	}
}

// PrintTable writes the summary, then each scenario's notes.
func PrintTable(w io.Writer, reports []Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tkind\trequests\tdropped\treq/s\tp50\tp99\tmax\terrors\tchecks failed\tverdict\t")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%d\t%d\t%s\t\n", r.Name, r.Kind, r.Requests, r.Dropped, r.Rate, round(r.P50), round(r.P99), round(r.Max),
			r.Errors, r.CheckFailed, r.verdictText())
	}
	tw.Flush()
	for _, r := range reports {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, n)
		}
	}
}

func (r *Report) verdictText() string {
	if r.Passed {
		return "pass"
	}
	return "FAIL: " + r.FailedReason
}

// round keeps three significant figures or so: 1.234ms, 12.3ms, 1.23s.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// errExhausted stops an attack that asked for more than was made in advance.
var errExhausted = errors.New("loadtest: more requests than were prepared before the clock started")
