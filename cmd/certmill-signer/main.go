// Command certmill-signer runs the signing service (package signer).
//
//	certmill-signer -config signer.yaml
//	certmill-signer -config signer.yaml -check-config
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/certmill/certmill/signer"
)

func main() {
	cfgPath := flag.String("config", "signer.yaml", "configuration file (YAML)")
	check := flag.Bool("check-config", false, "validate the configuration and exit")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := signer.Load(*cfgPath)
	if err == nil {
		cfg.Defaults()
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-signer: %v\nhint: fix the configuration; every problem is listed\n", err)
		os.Exit(2)
	}
	if *check {
		fmt.Println("certmill-signer: configuration OK")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s, err := signer.New(ctx, cfg, signer.Deps{Log: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-signer: %v\n", err)
		os.Exit(1)
	}
	defer s.Close()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "certmill-signer: %v\n", err)
		os.Exit(1)
	}
}
