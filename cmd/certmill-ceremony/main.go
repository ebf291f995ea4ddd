// Command certmill-ceremony runs the offline root CA's ceremonies. It
// needs no network and no running service: only the PKCS#11 module, the
// ceremony file and, after init, M custodians' share files.
//
//	certmill-ceremony init      -config ceremony.yaml
//	certmill-ceremony issue-ca  -config ceremony.yaml -name NAME -share FILE -share FILE ...
//	certmill-ceremony revoke-ca -config ceremony.yaml -name NAME -reason 1 -share FILE ...
//	certmill-ceremony crl       -config ceremony.yaml -share FILE ...
//	certmill-ceremony check-config -config ceremony.yaml
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/certmill/certmill/pkg/ceremony"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(s string) error { *f = append(*f, s); return nil }

func main() {
	if len(os.Args) < 2 || strings.HasPrefix(os.Args[1], "-") {
		usage()
	}
	op := os.Args[1]
	fs := flag.NewFlagSet(op, flag.ExitOnError)
	cfgPath := fs.String("config", "ceremony.yaml", "ceremony file (YAML)")
	name := fs.String("name", "", "issuing CA name, for issue-ca and revoke-ca")
	reason := fs.Int("reason", 5, "RFC 5280 CRLReason code, for revoke-ca (1 keyCompromise, 2 cACompromise, 4 superseded, 5 cessationOfOperation)")
	var shares files
	fs.Var(&shares, "share", "a custodian's share file; repeat once per custodian present")
	fs.Parse(os.Args[2:])

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := ceremony.Load(*cfgPath)
	if err != nil {
		fail(err, "fix the ceremony file; every problem is listed above")
	}
	d := ceremony.Deps{Log: log}
	var res *ceremony.Result
	switch op {
	case "check-config":
		fmt.Println("certmill-ceremony: configuration OK")
		return
	case "init":
		res, err = ceremony.Init(cfg, d)
	case "issue-ca", "revoke-ca", "crl":
		res, err = unlocked(cfg, shares, op, d, *name, *reason)
	default:
		usage()
	}
	if err != nil {
		fail(err, "")
	}
	os.Stdout.Write(res.Event.Text())
	fmt.Printf("written to %s (transcript.txt, transcript.json)\n", res.Dir)
}

func unlocked(cfg *ceremony.Config, paths []string, op string, d ceremony.Deps, name string, reason int) (*ceremony.Result, error) {
	shares, err := ceremony.ReadShares(paths)
	if err != nil {
		return nil, err
	}
	root, err := ceremony.Unlock(cfg, shares, op, d)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	switch op {
	case "issue-ca":
		return root.IssueCA(name)
	case "revoke-ca":
		return root.RevokeCA(name, reason)
	}
	return root.SignCRL()
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: certmill-ceremony OPERATION -config FILE [flags]

operations:
  init          create the root token, root key and certificate, the issuing CAs, the first root CRL and the custodians' shares
  issue-ca      certify an issuing CA named in the ceremony file (needs M shares)
  revoke-ca     put an issuing CA on the root CRL (needs M shares)
  crl           sign the next root CRL (needs M shares)
  check-config  validate the ceremony file and exit
`)
	os.Exit(2)
}

func fail(err error, hint string) {
	fmt.Fprintf(os.Stderr, "certmill-ceremony: %v\n", err)
	if hint != "" {
		fmt.Fprintf(os.Stderr, "hint: %s\n", hint)
	}
	os.Exit(1)
}
