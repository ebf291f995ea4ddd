// Command certmill is the client manufacturers run. It needs no PKCS#11
// and no NATS.
//
//	certmill submit -url URL -issuer manufacturing -profile device -out certs/ csrs/
//	certmill get    -url URL -serial HEX [-format pem|der|json]
//	certmill revoke -url URL -serial HEX -reason keyCompromise
//	certmill list   -url URL -batch-id ID | -metadata device_id=MTR-0001[,product_line=E350]
//
// The bearer token comes from $CERTMILL_TOKEN or -token-file, never argv.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	neturl "net/url"
	"os"
	"os/signal"
	"strings"

	"github.com/certmill/certmill/pkg/client"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	url := fs.String("url", envOr("CERTMILL_URL", "https://127.0.0.1:8443"), "signer URL ($CERTMILL_URL)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default: $CERTMILL_TOKEN)")
	caFile := fs.String("ca-file", "", "PEM bundle that verifies the signer's TLS certificate")
	issuer := fs.String("issuer", "manufacturing", "issuing CA, for submit")
	prof := fs.String("profile", "device", "profile, for submit")
	out := fs.String("out", "certs", "folder for certificates, chain and summary, for submit")
	size := fs.Int("batch", 1000, "CSRs per batch, for submit")
	meta := fs.String("metadata", "", "metadata as k=v,k=v (product_line, lot, plant, device_id): the batch's for submit, the filter for list")
	batchID := fs.String("batch-id", "", "batch id (from a submit's summary), for list")
	quiet := fs.Bool("quiet", false, "no progress bar")
	serialHex := fs.String("serial", "", "certificate serial (hex), for get and revoke")
	format := fs.String("format", "pem", "pem, der or json, for get")
	reason := fs.String("reason", "", "RFC 5280 reason (keyCompromise, superseded, cessationOfOperation, ...), for revoke")
	fs.Parse(os.Args[2:])

	token := os.Getenv("CERTMILL_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fail(err, "")
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		fail(fmt.Errorf("no token"), "set CERTMILL_TOKEN or pass -token-file")
	}
	c, err := client.New(*url, token, *caFile)
	if err != nil {
		fail(err, "")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch cmd {
	case "submit":
		md := map[string]string{}
		for _, kv := range strings.Split(*meta, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				md[k] = v
			}
		}
		s, err := client.Submit(ctx, c, client.SubmitOptions{Issuer: *issuer, Profile: *prof, Out: *out, BatchSize: *size,
			Metadata: md, Paths: fs.Args(), Progress: !*quiet, Stderr: os.Stderr})
		if err != nil {
			fail(err, "run the same command again: batches are retried with the same Idempotency-Key, so nothing is issued twice")
		}
		fmt.Printf("certmill: %d issued, %d failed, %.0f certificates/s; certificates in %s, summary in %s\n",
			s.Issued, s.Failed, s.Rate, *out, s.SummaryFile)
		if s.Failed > 0 {
			for _, f := range s.Failures {
				fmt.Fprintf(os.Stderr, "  %s: %s\n", f.Name, f.Reason)
			}
			fmt.Fprintln(os.Stderr, "hint: fix these CSRs and submit them again")
			os.Exit(1)
		}
	case "get":
		accept := map[string]string{"pem": "application/x-pem-file", "der": "application/pkix-cert", "json": "application/json"}[*format]
		if accept == "" || *serialHex == "" {
			fail(fmt.Errorf("get needs -serial and -format pem, der or json"), "")
		}
		b, err := c.Get(ctx, *serialHex, accept)
		if err != nil {
			fail(err, "")
		}
		os.Stdout.Write(b)
	case "list":
		q := neturl.Values{}
		if *batchID != "" {
			q.Set("batch_id", *batchID)
		}
		for _, kv := range strings.Split(*meta, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				q.Set("metadata."+k, v)
			}
		}
		if len(q) == 0 {
			fail(fmt.Errorf("list needs -batch-id or -metadata k=v"), "")
		}
		n := 0
		err := c.List(ctx, q, func(page []byte) error {
			var p struct {
				Certificates []json.RawMessage `json:"certificates"`
			}
			if err := json.Unmarshal(page, &p); err != nil {
				return err
			}
			for _, c := range p.Certificates { // one JSON object per line
				os.Stdout.Write(append(c, '\n'))
			}
			n += len(p.Certificates)
			return nil
		})
		if err != nil {
			fail(err, "")
		}
		fmt.Fprintf(os.Stderr, "certmill: %d certificates\n", n)
	case "revoke":
		if *serialHex == "" || *reason == "" {
			fail(fmt.Errorf("revoke needs -serial and -reason"), "")
		}
		b, err := c.Revoke(ctx, *serialHex, *reason, nil)
		if err != nil {
			fail(err, "")
		}
		os.Stdout.Write(append(b, '\n'))
	default:
		usage()
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func usage() {
	fmt.Fprint(os.Stderr, "usage: certmill submit|get|list|revoke [flags] (certmill submit -h for flags)\n")
	os.Exit(2)
}

func fail(err error, hint string) {
	fmt.Fprintf(os.Stderr, "certmill: %v\n", err)
	if hint != "" {
		fmt.Fprintf(os.Stderr, "hint: %s\n", hint)
	}
	os.Exit(1)
}
