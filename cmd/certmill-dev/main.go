// Command certmill-dev runs certmill on embedded defaults, for the demo and
// for exploring:
//
//	certmill-dev serve  -dir DIR                     every service in one process
//	certmill-dev keygen -out DIR -n 10000            a key-generation server's CSRs
//	certmill-dev fleet  -certs DIR -queries 2000     endpoints asking OCSP
//	certmill-dev revoke-drill -certs DIR -n 10       revoke and time OCSP
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/certmill/certmill/pkg/client"
	"github.com/certmill/certmill/pkg/devenv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: certmill-dev serve|keygen|fleet|revoke-drill [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "certmill-dev", "state folder, for serve")
	out := fs.String("out", "csrs", "folder for keys and CSRs, for keygen")
	prefix := fs.String("prefix", "MTR", "device id prefix, for keygen")
	n := fs.Int("n", 10000, "how many, for keygen and revoke-drill")
	certs := fs.String("certs", "certs", "folder of issued certificates, for fleet and revoke-drill")
	issuer := fs.String("issuer", "certmill-dev/ceremony/manufacturing.pem", "issuing CA certificate, for fleet and revoke-drill")
	ocspURL := fs.String("ocsp", "http://127.0.0.1:8081/manufacturing", "OCSP URL, for fleet and revoke-drill")
	queries := fs.Int("queries", 2000, "OCSP queries, for fleet")
	workers := fs.Int("workers", 16, "concurrent endpoints, for fleet")
	fs.Parse(os.Args[2:])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		log := slog.New(slog.NewJSONHandler(mustCreate(*dir+".log"), nil))
		err = devenv.Serve(ctx, devenv.Options{Dir: *dir, Log: log, Out: os.Stdout})
	case "keygen":
		err = devenv.Keygen(*out, *prefix, *n)
		if err == nil {
			fmt.Printf("certmill-dev: %d P-256 key pairs and CSRs in %s\n", *n, *out)
		}
	case "fleet":
		var rep *devenv.FleetReport
		if rep, err = devenv.Fleet(*ocspURL, *issuer, *certs, *queries, *workers); err == nil {
			b, _ := json.Marshal(rep)
			fmt.Println(string(b))
		}
	case "revoke-drill":
		cl, cerr := client.New(envOr("CERTMILL_URL", "http://127.0.0.1:8443"), os.Getenv("CERTMILL_TOKEN"), "")
		if cerr != nil {
			err = cerr
			break
		}
		names, lat, derr := devenv.RevokeDrill(ctx, cl, *ocspURL, *issuer, *certs, *n)
		if err = derr; err == nil {
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			fmt.Printf("revoked %s\nrevocation to revoked over OCSP: p50 %s, max %s\n", strings.Join(names, " "), lat[len(lat)/2], lat[len(lat)-1])
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-dev: %v\n", err)
		os.Exit(1)
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func mustCreate(path string) *os.File {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-dev: %v\n", err)
		os.Exit(1)
	}
	return f
}
