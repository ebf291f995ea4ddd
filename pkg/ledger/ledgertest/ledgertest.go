// Package ledgertest runs real nats-servers for tests: embedded in the
// test process, or the nats-server binary (from .tools/bin, put there by
// make setup) as a single node or a three-node cluster on loopback ports,
// so that a test can SIGKILL a node.
package ledgertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certmill/certmill/pkg/ledger"
)

// Embedded opens a ledger on an embedded server with data in t.TempDir().
func Embedded(t testing.TB) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// Binary is the path of the nats-server binary that make setup installs.
func Binary(t testing.TB) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(self), "../../../.tools/bin/nats-server")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	t.Fatal("ledgertest: nats-server not found (hint: make setup)")
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	given.mu.Lock()
	defer given.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may hand a port it just freed out again: never give
		// one port to two listeners of the same test process.
		if !given.ports[port] {
			given.ports[port] = true
			return port
		}
	}
}

var given = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// logTail is the end of a node's log, for a failure message.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Node is one nats-server process.
type Node struct {
	Name        string
	Port        int
	MonitorPort int
	ConfigFile  string
	bin         string
	cmd         *exec.Cmd
	log         *os.File
}

// URL is the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// MonitorURL is the node's HTTP monitoring URL.
func (n *Node) MonitorURL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.MonitorPort) }

// Start starts the process and waits until /healthz says ok.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.cmd = exec.Command(n.bin, "-c", n.ConfigFile)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(n.MonitorURL() + "/healthz?js-server-only=true")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledgertest: %s not healthy within 30s (log: %s):\n%s", n.Name, n.log.Name(), logTail(n.log.Name()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to die.
func (n *Node) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	n.cmd = nil
}

// Single starts one node with file storage and sync always. syncAlways
// false makes a node with JetStream's default lazy fsync, which
// ledger.Open must refuse.
func Single(t testing.TB, syncAlways bool) *Node {
	t.Helper()
	dir := t.TempDir()
	n := &Node{Name: "n1", Port: FreePort(t), MonitorPort: FreePort(t), bin: Binary(t)}
	sync := "sync_interval: always"
	if !syncAlways {
		sync = ""
	}
	n.ConfigFile = filepath.Join(dir, "n1.conf")
	os.WriteFile(n.ConfigFile, []byte(fmt.Sprintf(`server_name: n1
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q, %s }
`, n.Port, n.MonitorPort, filepath.Join(dir, "js"), sync)), 0o600)
	n.log, _ = os.Create(filepath.Join(dir, "n1.log"))
	n.Start(t)
	t.Cleanup(n.Kill)
	return n
}

// Cluster is three nodes with JetStream clustering on loopback.
type Cluster struct {
	Nodes []*Node
}

// URL lists every node's client URL.
func (c *Cluster) URL() string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL())
	}
	return strings.Join(u, ",")
}

// MonitorURLs lists every node's monitoring URL.
func (c *Cluster) MonitorURLs() []string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.MonitorURL())
	}
	return u
}

// Node returns the node named name.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NewCluster starts three nodes with sync always and waits for them.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	dir := t.TempDir()
	bin := Binary(t)
	c := &Cluster{}
	routes := make([]int, 3)
	for i := range routes {
		routes[i] = FreePort(t)
	}
	var routeURLs []string
	for _, p := range routes {
		routeURLs = append(routeURLs, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		n := &Node{Name: name, Port: FreePort(t), MonitorPort: FreePort(t), bin: bin}
		n.ConfigFile = filepath.Join(dir, name+".conf")
		os.WriteFile(n.ConfigFile, []byte(fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: always }
cluster {
  name: certmill
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, n.Port, n.MonitorPort, filepath.Join(dir, name), routes[i], strings.Join(routeURLs, ", "))), 0o600)
		n.log, _ = os.Create(filepath.Join(dir, name+".log"))
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		// Start all before waiting: JetStream is healthy only with a quorum.
		n.cmd = exec.Command(n.bin, "-c", n.ConfigFile)
		n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Kill)
	}
	for _, n := range c.Nodes {
		waitHealthy(t, n, 60*time.Second)
	}
	return c
}

func waitHealthy(t testing.TB, n *Node, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(n.MonitorURL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledgertest: %s not healthy within %s (log: %s):\n%s", n.Name, d, n.log.Name(), logTail(n.log.Name()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
