//go:build chaos

package chaos

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certmill/certmill/pkg/checkfor"
	"github.com/certmill/certmill/pkg/ledger"
	"github.com/certmill/certmill/pkg/ledger/ledgertest"
	"github.com/certmill/certmill/responder"
)

func freeBytes(t *testing.T, dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}

// TestResponderDiskFull: the responder's store lives on a 32 MiB tmpfs,
// which a filler file fills while certificates are issued and one is
// revoked. The responder stops applying before Pebble meets ENOSPC, says
// so in its log, fails readiness and answers tryLater (never good for the
// certificate revoked meanwhile), and does not crash; when room returns it
// catches up by itself, answers revoked, and its store equals the ledger.
func TestResponderDiskFull(t *testing.T) {
	node := ledgertest.Single(t, true)
	s := newSite(t, ledger.Config{URL: node.URL(), MonitorURLs: []string{node.MonitorURL()}}, "")
	mnt := filepath.Join(t.TempDir(), "disk")
	os.MkdirAll(mnt, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("chaos: the disk-full trial mounts a 32 MiB tmpfs and needs root (CAP_SYS_ADMIN): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	const reserve = 8 << 20
	rURL, r := s.responderProc("responder-disk", filepath.Join(mnt, "store"), reserve)
	s.signer.supervise(t)
	defer s.signer.stop()
	r.supervise(t)
	defer r.stop()
	if _, err := ready(s.signerURL, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	first := &batchRun{key: "disk-1", csrs: csrs(t, "DSK-A", 20)}
	submit(t, c, first, time.Minute)
	if first.resp == nil {
		t.Fatal("no first batch")
	}
	l := s.openLedger()
	seq, _ := l.LastSeq(context.Background())
	if err := caughtUp(rURL, seq, time.Minute); err != nil {
		t.Fatal(err)
	}
	issuer := readCert(t, s.h.File("manufacturing.pem"))
	victim := parsePEM(t, first.resp.Results[0].Certificate)
	if st, err := ocspStatus(rURL, victim, issuer); err != nil || st != ocsp.Good {
		t.Fatalf("before: %d %v", st, err)
	}

	// Fill the disk to below the reserve.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	free := freeBytes(t, mnt)
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(free-reserve/2)); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	f.Close()
	t.Logf("disk filled: %d bytes free of 32 MiB, reserve %d", freeBytes(t, mnt), reserve)
	second := &batchRun{key: "disk-2", csrs: csrs(t, "DSK-B", 20)}
	submit(t, c, second, time.Minute)
	if !revoke(t, c, first.resp.Results[0].Serial, time.Minute) {
		t.Fatal("revoke")
	}
	// Not ready, tryLater, never good.
	notReady := checkfor.Within(10*time.Second, 50*time.Millisecond, func() bool {
		resp, err := http.Get(rURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	if !notReady {
		t.Fatal("the responder stayed ready with a full disk")
	}
	tryLater := 0
	for range 20 {
		st, err := ocspStatus(rURL, victim, issuer)
		var re ocsp.ResponseError
		switch {
		case errors.As(err, &re) && re.Status == ocsp.TryLater:
			tryLater++
		case err == nil && st == ocsp.Good:
			t.Fatal("WRONG: good for a certificate revoked while the disk was full")
		case err == nil && st == ocsp.Revoked:
			t.Fatal("the responder applied a revocation with no room: the reserve did not hold")
		default:
			t.Fatalf("with a full disk: status %d, %v", st, err)
		}
	}
	if !r.logHas("disk space below the reserve") {
		t.Error("the responder's log does not say that the disk is full")
	}
	if r.exits+r.kills != 0 || r.starts != 1 {
		t.Fatalf("the responder died with a full disk (%d starts)", r.starts)
	}

	// Room again: it catches up by itself.
	os.Remove(filler)
	t0 := time.Now()
	seq, _ = l.LastSeq(context.Background())
	if err := caughtUp(rURL, seq, 30*time.Second); err != nil {
		t.Fatalf("after room returned: %v", err)
	}
	recovered := time.Since(t0)
	if st, err := ocspStatus(rURL, victim, issuer); err != nil || st != ocsp.Revoked {
		t.Fatalf("after room returned: status %d, %v; want revoked", st, err)
	}
	r.stop()
	got, gotSeq, err := responder.ReadState(filepath.Join(mnt, "store"))
	if err != nil {
		t.Fatalf("the store after the full disk: %v", err)
	}
	v := readStream(t, l)
	bad := diffResponder(t, "responder after a full disk", got, responderView(v.state.Snapshot()))
	if gotSeq != v.last {
		t.Errorf("responder applied %d of %d", gotSeq, v.last)
	}
	t.Logf(`
chaos: the responder's disk filled (32 MiB tmpfs, reserve %d MiB)
  while full                   readyz 503; %d OCSP answers for the certificate revoked meanwhile, all tryLater (none good); no crash
  recovery                     caught up %s after room returned, by itself; OCSP revoked
  store checked                %d serials against the ledger (%d records): %d differences
`, reserve>>20, tryLater, recovered.Round(time.Millisecond), len(got), v.records, bad)
}
