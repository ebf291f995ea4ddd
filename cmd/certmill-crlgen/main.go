// Command certmill-crlgen issues and serves full and delta CRLs (package crlgen).
//
//	certmill-crlgen -config crlgen.yaml [-check-config]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/certmill/certmill/crlgen"
)

func main() {
	cfgPath := flag.String("config", "crlgen.yaml", "configuration file (YAML)")
	check := flag.Bool("check-config", false, "validate the configuration and exit")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := crlgen.Load(*cfgPath)
	if err == nil {
		cfg.Defaults()
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-crlgen: %v\nhint: fix the configuration; every problem is listed\n", err)
		os.Exit(2)
	}
	if *check {
		fmt.Println("certmill-crlgen: configuration OK")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	g, err := crlgen.New(ctx, cfg, crlgen.Deps{Log: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-crlgen: %v\n", err)
		os.Exit(1)
	}
	defer g.Close()
	if err := g.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "certmill-crlgen: %v\n", err)
		os.Exit(1)
	}
}
