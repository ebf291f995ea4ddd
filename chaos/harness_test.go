//go:build chaos

// Package chaos is the fault suite: it runs the real binaries (built with
// the "faults" tag, so that the signer can also kill itself at named
// points), the real nats-server and SoftHSM2, kills and starves them on
// purpose, and checks the invariants afterwards against the ledger.
//
//	make chaos                        # the full profile
//	make chaos CHAOS_PROFILE=short    # what CI runs
//
// Every trial prints its figures (trials, faults injected, records
// checked, losses) and fails on any loss.
package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ceremony/ceremonytest"
	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/pkg/tenant"
)

var profileName = flag.String("profile", "full", "short (CI) or full")

// profile sizes the suite.
type profile struct {
	batches      int              // batch submissions under SIGKILL (at least 200)
	workers      int              // clients submitting at once
	batchSize    [2]int           // CSRs per batch, min and max
	signerKills  [2]time.Duration // random SIGKILL of the signer every [a, b)
	readerKills  [2]time.Duration // same for the responder and crlgen
	natsKills    int              // kills of the single nats-server node
	faultP       float64          // probability of each kill point in the signer
	clusterBatch int              // batches through the three-node cluster
	leaderKills  int              // stream leader kills in the cluster
	slowConns    int              // slow connections per server
	oversized    int              // oversized requests per server
}

var profiles = map[string]profile{
	"short": {batches: 200, workers: 2, batchSize: [2]int{3, 12}, signerKills: [2]time.Duration{700 * time.Millisecond, 2 * time.Second},
		readerKills: [2]time.Duration{time.Second, 3 * time.Second}, natsKills: 2, faultP: 0.03,
		clusterBatch: 60, leaderKills: 1, slowConns: 200, oversized: 20},
	"full": {batches: 1000, workers: 3, batchSize: [2]int{3, 40}, signerKills: [2]time.Duration{500 * time.Millisecond, 2 * time.Second},
		readerKills: [2]time.Duration{700 * time.Millisecond, 3 * time.Second}, natsKills: 6, faultP: 0.03,
		clusterBatch: 200, leaderKills: 3, slowConns: 1000, oversized: 100},
}

func prof(t *testing.T) profile {
	p, ok := profiles[*profileName]
	if !ok {
		t.Fatalf("chaos: unknown profile %q (short or full)", *profileName)
	}
	return p
}

// binDir holds the binaries built with -tags faults.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "certmill-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-tags", "faults", "-o", dir+"/", "./cmd/certmill-signer", "./cmd/certmill-responder", "./cmd/certmill-crlgen")
	build.Dir = filepath.Join(filepath.Dir(self), "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: building the binaries with -tags faults:", err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one service process that the suite starts, kills and restarts.
type proc struct {
	name    string
	args    []string
	env     []string
	logPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	starts   int
	kills    int // SIGKILLs the suite sent
	exits    int // exits on its own (a fault point, or a refused start)
	stopping bool
}

func newProc(dir, bin string, args []string, env ...string) *proc {
	return &proc{name: bin, args: append([]string{filepath.Join(binDir, bin)}, args...), env: env, logPath: filepath.Join(dir, bin+".log")}
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.starts++
	p.mu.Unlock()
	return nil
}

// running returns the current process's done channel, or nil.
func (p *proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// kill sends SIGKILL to the running process and waits for it to die.
func (p *proc) kill() bool {
	cmd, done := p.current()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	p.mu.Lock()
	p.kills++
	p.mu.Unlock()
	return true
}

// stop ends supervision and the process, gracefully (SIGTERM) first.
func (p *proc) stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	cmd, done := p.current()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// supervise restarts the process whenever it dies, as systemd would,
// until stop; it returns at once.
func (p *proc) supervise(t *testing.T) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatalf("chaos: start %s: %v", p.name, err)
	}
	go func() {
		for {
			cmd, done := p.current()
			<-done
			p.mu.Lock()
			stopping := p.stopping
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL) {
				p.exits++
			}
			p.mu.Unlock()
			if stopping {
				return
			}
			pause(100 * time.Millisecond)
			if err := p.start(); err != nil {
				return
			}
		}
	}()
}

// selfKills counts the "fault: <point>" lines the process wrote before
// killing itself, by point.
func (p *proc) selfKills() map[string]int {
	m := map[string]int{}
	f, err := os.Open(p.logPath)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "fault: "); ok {
			m[name]++
		}
	}
	return m
}

// logHas reports whether the process's log holds s.
func (p *proc) logHas(s string) bool {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Contains(b, []byte(s))
}

// startCount is how many times the process has been started.
func (p *proc) startCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

func (p *proc) pid() int {
	cmd, done := p.current()
	if cmd == nil {
		return 0
	}
	select {
	case <-done:
		return 0
	default:
		return cmd.Process.Pid
	}
}

// ready polls base/readyz until it answers 200 and returns the applied
// ledger sequence the readers report (0 for the signer).
func ready(base string, d time.Duration) (uint64, error) {
	var last string
	var seq uint64
	ok := checkfor.Within(d, 50*time.Millisecond, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		seq, _ = strconv.ParseUint(resp.Header.Get("Certmill-Applied-Seq"), 10, 64)
		last = resp.Status
		return resp.StatusCode == 200
	})
	if !ok {
		return 0, fmt.Errorf("%s not ready within %s: %s", base, d, last)
	}
	return seq, nil
}

// caughtUp waits until the reader at base is ready and has applied seq.
func caughtUp(base string, seq uint64, d time.Duration) error {
	var got uint64
	var err error
	if checkfor.Within(d, 50*time.Millisecond, func() bool {
		got, err = ready(base, d)
		return err == nil && got >= seq
	}) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%s applied %d of %d within %s", base, got, seq, d)
}

// pause is the suite's one deliberate wait: a node's down time, a slow
// client's trickle, a client's back-off before retrying, a supervisor's
// restart delay. Waits for a condition use checkfor instead.
func pause(d time.Duration) { time.Sleep(d) }

const token = "chaos-token-5a1f"

// site is a hierarchy and the configuration of the three services against
// one ledger; the suite starts the services it needs.
type site struct {
	t       *testing.T
	dir     string
	h       *ceremonytest.Hierarchy
	issuers string
	ledger  ledger.Config

	signer, responder, crlgen          *proc
	signerURL, responderURL, crlgenURL string
	responderDir, crlgenDir            string
}

// newSite makes a root ceremony on SoftHSM2 and writes the services'
// configuration for the ledger lc. faults is CERTMILL_FAULTS for the signer.
func newSite(t *testing.T, lc ledger.Config, faults string) *site {
	t.Helper()
	s := &site{t: t, dir: t.TempDir(), ledger: lc}
	if keep := os.Getenv("CHAOS_LOGS"); keep != "" {
		// Keep the services' logs of this trial for a post-mortem.
		t.Cleanup(func() {
			logs, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
			dst := filepath.Join(keep, t.Name())
			os.MkdirAll(dst, 0o700)
			for _, f := range logs {
				if b, err := os.ReadFile(f); err == nil {
					os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o600)
				}
			}
		})
	}
	s.h = ceremonytest.New(t, fmt.Sprintf("c%d", time.Now().UnixNano()%1e9))
	_, self, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(self), "../configs/issuers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.issuers = filepath.Join(s.dir, "issuers.yaml")
	os.WriteFile(s.issuers, bytes.ReplaceAll(src, []byte("../demo/ceremony/"), []byte(s.h.Config.OutDir+"/")), 0o600)
	s.signerURL, s.signer = s.signerProc(faults)
	s.responderDir, s.crlgenDir = filepath.Join(s.dir, "responder"), filepath.Join(s.dir, "crlgen")
	s.responderURL, s.responder = s.responderProc("responder", s.responderDir, 64<<20)
	s.crlgenURL, s.crlgen = s.crlgenProc("crlgen", s.crlgenDir)
	if faults != "" {
		s.crlgen.env = append(s.crlgen.env, "CERTMILL_FAULTS="+faults)
	}
	return s
}

func (s *site) hsmYAML(sessions int) string {
	return fmt.Sprintf("hsm: {token: %q, pin: {file: %q}, sessions: %d, session_wait: 5s}\n", s.h.Online.Token, s.h.Online.PIN.File, sessions)
}

func (s *site) ledgerYAML() string {
	mon := make([]string, len(s.ledger.MonitorURLs))
	for i, u := range s.ledger.MonitorURLs {
		mon[i] = strconv.Quote(u)
	}
	return fmt.Sprintf("ledger: {url: %q, monitor_urls: [%s], replicas: %d, ack_timeout: 2s}\n", s.ledger.URL, strings.Join(mon, ", "), max(s.ledger.Replicas, 1))
}

func (s *site) write(name, body string) string {
	f := filepath.Join(s.dir, name)
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return f
}

func (s *site) signerProc(faults string) (string, *proc) {
	port := ledgertest.FreePort(s.t)
	f := s.write("signer.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
insecure_plain_http: true
issuers_file: %q
%s%slint: true
tenants:
  - name: acme
    token_sha256: %s
    issuers: {manufacturing: [device]}
limits: {read_timeout: 3s, write_timeout: 30s, idle_timeout: 10s, batch_timeout: 60s, max_body_bytes: 1048576}
`, port, s.issuers, s.hsmYAML(4), s.ledgerYAML(), tenant.HashToken(token)))
	var env []string
	if faults != "" {
		env = append(env, "CERTMILL_FAULTS="+faults)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port), newProc(s.dir, "certmill-signer", []string{"-config", f}, env...)
}

func (s *site) responderProc(name, dir string, minFree uint64) (string, *proc) {
	port := ledgertest.FreePort(s.t)
	f := s.write(name+".yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
dir: %q
issuers_file: %q
%s%sexpected_certificates: 100000
min_free_bytes: %d
`, port, dir, s.issuers, s.hsmYAML(2), s.ledgerYAML(), minFree))
	p := newProc(s.dir, "certmill-responder", []string{"-config", f})
	p.logPath = filepath.Join(s.dir, name+".log")
	return fmt.Sprintf("http://127.0.0.1:%d", port), p
}

func (s *site) crlgenProc(name, dir string) (string, *proc) {
	port := ledgertest.FreePort(s.t)
	f := s.write(name+".yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
dir: %q
issuers_file: %q
%s%sdebounce: 200ms
`, port, dir, s.issuers, s.hsmYAML(2), s.ledgerYAML()))
	p := newProc(s.dir, "certmill-crlgen", []string{"-config", f})
	p.logPath = filepath.Join(s.dir, name+".log")
	return fmt.Sprintf("http://127.0.0.1:%d", port), p
}

// openLedger connects the suite itself to the ledger, to check it.
func (s *site) openLedger() *ledger.Ledger {
	s.t.Helper()
	l, err := ledger.Open(context.Background(), s.ledger, nil)
	if err != nil {
		s.t.Fatalf("chaos: open the ledger: %v", err)
	}
	s.t.Cleanup(l.Close)
	return l
}

func (s *site) client() *client.Client {
	c, _ := client.New(s.signerURL, token, "")
	c.Retries = 0 // the suite retries itself, and counts
	c.HTTP.Timeout = 60 * time.Second
	return c
}

// csrs makes n device CSRs with fresh P-256 keys.
func csrs(t *testing.T, prefix string, n int) []client.CSR {
	t.Helper()
	out := make([]client.CSR, n)
	for i := range n {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		id := fmt.Sprintf("%s-%04d", prefix, i)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id},
			URIs: []*url.URL{{Scheme: "urn", Opaque: "dev:ops:" + id}}}, k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = client.CSR{Name: id, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
	}
	return out
}
