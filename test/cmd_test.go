// Package test holds tests across binaries: what each imports, that no
// secret can be passed on a command line, and the ceremony run as a
// process, as an operator runs it.
package test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/certmill/certmill/pkg/ceremony/ceremonytest"
)

// TestDeps pins what each binary may import (tailscale's cmd/derper
// TestDeps): the offline ceremony has no ledger, server or store code, the
// client has no PKCS#11. (net/http reaches the ceremony through zlint's
// public suffix list, which it never fetches.)
func TestDeps(t *testing.T) {
	t.Parallel()
	forbidden := map[string][]string{
		"certmill-ceremony": {"github.com/nats-io/", "github.com/valyala/fasthttp", "github.com/cockroachdb/pebble", "github.com/prometheus/"},
		"certmill":          {"github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11", "github.com/cockroachdb/pebble"},
	}
	forbidden["../loadtest"] = []string{"github.com/ThalesGroup/crypto11", "github.com/miekg/pkcs11", "github.com/nats-io/"}
	for bin, bad := range forbidden {
		pkg := "../cmd/" + bin
		if strings.HasPrefix(bin, "..") {
			pkg = bin
		}
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", bin, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if dep == b || strings.HasPrefix(dep, b) {
					t.Errorf("%s imports %s", bin, dep)
				}
			}
		}
	}
}

// TestNoSecretFlags fails if any binary defines a command-line flag whose
// name suggests a PIN, password, passphrase, secret or token: those come
// from files or the environment only.
func TestNoSecretFlags(t *testing.T) {
	t.Parallel()
	secretish := regexp.MustCompile(`(?i)pin|pass|secret|token|key$`)
	mains, _ := filepath.Glob("../cmd/*/*.go")
	if len(mains) < 6 {
		t.Fatalf("found %d files under cmd/", len(mains))
	}
	fset := token.NewFileSet()
	for _, f := range mains {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !regexp.MustCompile(`^(String|Int|Bool|Duration|Var|Func|TextVar)(Var)?$`).MatchString(sel.Sel.Name) {
				return true
			}
			for _, a := range call.Args {
				if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					name, _ := strconv.Unquote(lit.Value)
					// A path to a file that holds a secret is fine: -token-file.
					if secretish.MatchString(name) && !strings.HasSuffix(name, "-file") {
						t.Errorf("%s: flag %q looks like a secret on argv", fset.Position(lit.Pos()), name)
					}
					break
				}
			}
			return true
		})
	}
}

// TestCeremonyBinary runs certmill-ceremony as an operator would: init,
// then a root CRL with two custodians (refused) and with three.
func TestCeremonyBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "certmill-ceremony")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/certmill-ceremony").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cfg := ceremonytest.Config(t, "bin", "")
	cfgFile := filepath.Join(filepath.Dir(cfg.OutDir), "ceremony.yaml")
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	var all strings.Builder
	out, err := run("init", "-config", cfgFile)
	all.WriteString(out)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	share := func(n string) string { return filepath.Join(cfg.OutDir, "shares", "share-"+n+".txt") }
	out, err = run("crl", "-config", cfgFile, "-share", share("alice"), "-share", share("bob"))
	all.WriteString(out)
	if err == nil || !strings.Contains(out, "too few custodian shares") || !strings.Contains(out, "3 of 5") {
		t.Fatalf("crl with 2 shares: %v\n%s", err, out)
	}
	out, err = run("crl", "-config", cfgFile, "-share", share("alice"), "-share", share("carol"), "-share", share("erin"))
	all.WriteString(out)
	if err != nil || !strings.Contains(out, "root CRL number 2") {
		t.Fatalf("crl with 3 shares: %v\n%s", err, out)
	}
	for _, n := range []string{"alice", "bob", "carol", "dave", "erin"} {
		b, _ := os.ReadFile(share(n))
		data := strings.ReplaceAll(strings.SplitN(strings.SplitN(string(b), "data: ", 2)[1], "\n", 2)[0], " ", "")
		if strings.Contains(strings.ReplaceAll(all.String(), " ", ""), data[:16]) {
			t.Fatalf("output contains %s's share", n)
		}
	}
	pin, _ := os.ReadFile(filepath.Join(filepath.Dir(cfg.OutDir), "online.pin"))
	if strings.Contains(all.String(), string(pin)) {
		t.Fatal("output contains the online PIN")
	}
}
