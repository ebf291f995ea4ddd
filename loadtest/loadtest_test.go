package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image/png"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/serial"
)

// crlServer serves one signed CRL with an ETag on loopback.
func crlServer(t *testing.T) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign, SubjectKeyId: []byte{1}}
	der, _ := x509.CreateCertificate(rand.Reader, ca, ca, k.Public(), k)
	caCert, _ := x509.ParseCertificate(der)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, caCert, k)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		if r.Header.Get("If-None-Match") == `"x"` {
			w.WriteHeader(304)
			return
		}
		w.Write(crl)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/ca.crl"
}

// TestImpossibleThresholdFails: the same load passes a loose threshold and
// fails an impossible one, which is what makes CI go red.
func TestImpossibleThresholdFails(t *testing.T) {
	url := crlServer(t)
	for _, tc := range []struct {
		p99  time.Duration
		pass bool
	}{{time.Second, true}, {time.Nanosecond, false}} {
		f := &File{Target: Target{CRL: url}, Scenarios: []Scenario{{Name: "crl", Kind: "crl",
			Stages: []Stage{{Rate: 100, Duration: time.Second}}, Thresholds: Thresholds{P99: tc.p99}}}}
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		res, err := Run(f)
		if err != nil {
			t.Fatal(err)
		}
		r := res.Reports[0]
		if r.Passed != tc.pass || r.Requests < 90 || r.Errors != 0 || r.CheckFailed != 0 {
			t.Fatalf("p99 threshold %s: %+v", tc.p99, r)
		}
		if !tc.pass && !strings.Contains(r.FailedReason, "p99") {
			t.Fatalf("reason %q", r.FailedReason)
		}
	}
}

// TestLoopbackOnly refuses targets off this machine and unbounded runs.
func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	f := &File{Target: Target{OCSP: "http://10.0.0.1:8081/x"}, Scenarios: []Scenario{{Kind: "ocsp", Stages: []Stage{{Rate: 1, Duration: time.Hour}}}}}
	err := f.Validate()
	if err == nil || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("Validate: %v", err)
	}
}

// stormFile is a revocation storm beside an OCSP fleet that asks about
// the storm's certificates, by GET and POST.
func stormFile(tg Target, bound time.Duration) *File {
	return &File{Target: tg, Scenarios: []Scenario{{Parallel: []Scenario{
		{Name: "storm", Kind: "revoke", Stages: []Stage{{Rate: 10, Duration: time.Second}}, Thresholds: Thresholds{RevokedWithin: bound}},
		{Name: "fleet", Kind: "ocsp", NeverIssue: 0.1, StormShare: 0.5, PostShare: 0.5, Stages: []Stage{{Rate: 200, Duration: 1500 * time.Millisecond}}},
	}}}}
}

// TestStorm: a responder that shows revocations in time passes; one that
// is slow, or that says good again after it said revoked, fails.
func TestStorm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		visible, back time.Duration
		stormReason   string // "" when the storm passes
		fleetPasses   bool
	}{
		{"in time", 20 * time.Millisecond, 0, "", true},
		{"too slow", 400 * time.Millisecond, 0, "revoked within", false},
		{"back to good", 0, 50 * time.Millisecond, "said good for a revoked certificate", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fk := newFake(t)
			fk.visibleAfter, fk.forgetAfter = tc.visible, tc.back
			res, err := Run(stormFile(fk.start(t), 200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			storm, fleet := res.Reports[0], res.Reports[1]
			if storm.Name != "storm" || storm.Requests < 9 || storm.Errors != 0 || storm.CheckFailed != 0 {
				t.Fatalf("storm: %+v", storm)
			}
			if fleet.Requests < 250 || fleet.Errors != 0 {
				t.Fatalf("fleet: %+v", fleet)
			}
			if storm.Passed != (tc.stormReason == "") || !strings.Contains(storm.FailedReason, tc.stormReason) {
				t.Fatalf("storm verdict %v %q, want reason %q; notes %q", storm.Passed, storm.FailedReason, tc.stormReason, storm.Notes)
			}
			if fleet.Passed != tc.fleetPasses {
				t.Fatalf("fleet verdict %v %q; notes %q", fleet.Passed, fleet.FailedReason, fleet.Notes)
			}
			if !strings.Contains(strings.Join(fleet.Notes, "\n"), "answers about the storm's certificates") {
				t.Fatalf("fleet notes %q", fleet.Notes)
			}
		})
	}
}

// TestBatch: every CSR of every batch gets checked, certificates per
// second reported; two batch scenarios at once use keys of their own (the
// fake answers a key it has seen as a replay, which fails the check).
func TestBatch(t *testing.T) {
	t.Parallel()
	fk := newFake(t)
	b := Scenario{Kind: "batch", BatchSize: 20, Stages: []Stage{{Rate: 2.5, Duration: time.Second}}, Thresholds: Thresholds{P99: 5 * time.Second}}
	b1, b2 := b, b
	b1.Name, b2.Name = "line 1", "line 2"
	res, err := Run(&File{Target: fk.start(t), Scenarios: []Scenario{{Parallel: []Scenario{b1, b2}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Reports {
		if !r.Passed || r.Requests != 3 || r.Dropped != 0 || r.Errors+r.CheckFailed != 0 {
			t.Fatalf("%+v", r)
		}
		if !strings.Contains(r.Notes[0], "60 certificates checked") || !strings.Contains(r.Notes[0], "certificates/s") {
			t.Fatalf("notes %q", r.Notes)
		}
	}
}

// TestCheckBatch: each thing that can be wrong in a batch answer is caught.
func TestCheckBatch(t *testing.T) {
	t.Parallel()
	fk := newFake(t)
	devs, err := makeDevices("dev", 3)
	if err != nil {
		t.Fatal(err)
	}
	type res = map[string]any
	answer := func(mod func(i int, c *x509.Certificate, r res)) []byte {
		var rs []res
		for i, d := range devs {
			blk, _ := pem.Decode([]byte(d.csr))
			csr, _ := x509.ParseCertificateRequest(blk.Bytes)
			c, err := fk.issue(csr)
			if err != nil {
				t.Fatal(err)
			}
			r := res{"index": i, "serial": serial.Hex(c.SerialNumber), "certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))}
			mod(i, c, r)
			rs = append(rs, r)
		}
		b, _ := json.Marshal(res{"batch_id": "b", "issued": len(rs), "results": rs})
		return b
	}
	other := answer(func(int, *x509.Certificate, res) {})
	var otherCert string
	{
		var a batchAnswer
		json.Unmarshal(other, &a)
		otherCert = a.Results[1].Certificate
	}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"good", answer(func(int, *x509.Certificate, res) {}), ""},
		{"not json", []byte("<html>"), "not a batch answer"},
		{"serial", answer(func(i int, _ *x509.Certificate, r res) {
			if i == 1 {
				r["serial"] = "01"
			}
		}), "serial"},
		{"another key", answer(func(i int, _ *x509.Certificate, r res) {
			if i == 1 {
				r["certificate"] = otherCert
			}
		}), "serial"},
		{"problem", answer(func(i int, _ *x509.Certificate, r res) {
			if i == 2 {
				delete(r, "certificate")
				r["problem"] = res{"type": "urn:x:bad-csr", "detail": "no"}
			}
		}), "urn:x:bad-csr"},
		{"garbage certificate", answer(func(i int, _ *x509.Certificate, r res) {
			if i == 0 {
				r["certificate"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
			}
		}), "does not parse"},
		{"index", answer(func(i int, _ *x509.Certificate, r res) { r["index"] = 2 - i }), "index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, wrong := checkBatch(tc.body, devs)
			if !strings.Contains(wrong, tc.want) || (tc.want == "") != (wrong == "") {
				t.Fatalf("checkBatch = %d, %q; want %q", n, wrong, tc.want)
			}
			if tc.want == "" && n != len(devs) {
				t.Fatalf("%d issued", n)
			}
		})
	}
	// The same serial and certificate but for a key that is not the CSR's.
	swapped := make([]device, len(devs))
	copy(swapped, devs)
	swapped[0].spki, swapped[1].spki = devs[1].spki, devs[0].spki
	if _, wrong := checkBatch(answer(func(int, *x509.Certificate, res) {}), swapped); !strings.Contains(wrong, "public key") {
		t.Fatalf("swapped keys: %q", wrong)
	}
}

// TestValidate lists the problems of bad scenario files.
func TestValidate(t *testing.T) {
	t.Parallel()
	tg := Target{OCSP: "http://127.0.0.1:1/x", CRL: "http://127.0.0.1:1/c", Signer: "http://127.0.0.1:2", TokenFile: "t", IssuerCert: "i", CertsDir: "d"}
	st := []Stage{{Rate: 1, Duration: time.Second}}
	for _, tc := range []struct {
		name string
		sc   []Scenario
		want string
	}{
		{"storm share alone", []Scenario{{Name: "a", Kind: "ocsp", StormShare: 0.1, Stages: st}}, "needs a revoke scenario"},
		{"two storms", []Scenario{{Parallel: []Scenario{{Name: "a", Kind: "revoke", Stages: st}, {Name: "b", Kind: "revoke", Stages: st}}}}, "at most one revoke"},
		{"nested", []Scenario{{Parallel: []Scenario{{Name: "a", Parallel: []Scenario{{Name: "b", Kind: "crl", Stages: st}}}}}}, "do not nest"},
		{"same name", []Scenario{{Name: "a", Kind: "crl", Stages: st}, {Name: "a", Kind: "crl", Stages: st}}, "no other scenario has"},
		{"unknown kind", []Scenario{{Name: "a", Kind: "acme", Stages: st}}, "want ocsp, crl, batch or revoke"},
		{"batch field elsewhere", []Scenario{{Name: "a", Kind: "crl", BatchSize: 3, Stages: st}}, "batch_size is for batch"},
		{"too many CSRs", []Scenario{{Name: "a", Kind: "batch", BatchSize: 10000, Stages: []Stage{{Rate: 20, Duration: time.Second}}}}, "CSRs to make in advance"},
		{"reason", []Scenario{{Name: "a", Kind: "revoke", Reason: "certificateHold", Stages: st}}, "not an RFC 5280 reason"},
		{"long group", []Scenario{{Parallel: []Scenario{{Name: "a", Kind: "crl", StartTime: 4 * time.Minute, Stages: []Stage{{Rate: 1, Duration: 2 * time.Minute}}}}}}, "at most 5m"},
		{"zero rate", []Scenario{{Name: "a", Kind: "crl", Stages: []Stage{{Rate: 0, Duration: time.Second}}}}, "stage rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &File{Target: tg, Scenarios: tc.sc}
			f.Defaults()
			err := f.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v; want %q", err, tc.want)
			}
		})
	}
}

// TestShippedScenarioFiles loads every scenario file in scenarios/.
func TestShippedScenarioFiles(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("scenarios/*.yaml")
	if len(files) < 2 {
		t.Fatalf("scenario files: %v", files)
	}
	for _, p := range files {
		f, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]bool{}
		for _, s := range f.Scenarios {
			for _, x := range append([]Scenario{s}, s.Parallel...) {
				kinds[x.Kind] = true
			}
		}
		for _, k := range []string{"ocsp", "crl", "batch", "revoke"} {
			if !kinds[k] {
				t.Errorf("%s: no %s scenario", p, k)
			}
		}
	}
}

// TestWriteReport: a run leaves a Markdown summary, JSON and a PNG that decodes.
func TestWriteReport(t *testing.T) {
	t.Parallel()
	f := &File{Target: Target{CRL: crlServer(t)}, Scenarios: []Scenario{{Name: "crl", Kind: "crl", Stages: []Stage{{Rate: 50, Duration: time.Second}}}}}
	res, err := Run(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, "x.yaml", res); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !strings.Contains(string(md), "| crl | 0 | crl | 50 | 0 |") || !strings.Contains(string(md), "plot.png") {
		t.Fatalf("summary.md:\n%s", md)
	}
	pf, err := os.Open(filepath.Join(dir, "plot.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if _, err := png.Decode(pf); err != nil {
		t.Fatal(err)
	}
}

// TestPacer: each stage starts on time and sends from its first instant,
// ceil(rate × duration) requests, under vegeta's attack loop.
func TestPacer(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		stages []Stage
		want   []time.Duration // when each hit leaves
	}{
		{[]Stage{{1, 2 * s}, {4, s}}, []time.Duration{0, s, 2 * s, 2250 * time.Millisecond, 2500 * time.Millisecond, 2750 * time.Millisecond}},
		{[]Stage{{2.5, s}}, []time.Duration{0, 400 * time.Millisecond, 800 * time.Millisecond}},
		{[]Stage{{0.5, 3 * s}, {1, s}}, []time.Duration{0, 2 * s, 3 * s}},
	} {
		p := newStagedPacer(tc.stages)
		var du time.Duration
		for _, st := range tc.stages {
			du += st.Duration
		}
		// vegeta's loop: stop past the duration, else ask, sleep, send.
		var got []time.Duration
		for elapsed := time.Duration(0); elapsed <= du; {
			w, stop := p.Pace(elapsed, uint64(len(got)))
			if stop {
				break
			}
			elapsed += w
			got = append(got, elapsed)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v: hits at %v, want %v", tc.stages, got, tc.want)
		}
	}
	if n := newStagedPacer([]Stage{{1000, s}, {200, 3 * s}}).total; n != 1600 {
		t.Errorf("total %d, want 1600", n)
	}
}
