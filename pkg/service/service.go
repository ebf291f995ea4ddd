// Package service is the main of every long-running certmill binary:
// flags, strict configuration, -check-config, structured logs, and a
// context that SIGTERM or Ctrl-C ends (the service then drains and stops).
package service

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Service is what New builds: Run serves until ctx ends.
type Service interface {
	Run(ctx context.Context) error
	Close()
}

// Config is a configuration that fills its defaults and checks itself.
type Config interface {
	Defaults()
	Validate() error
}

// Main loads the configuration named by -config with load, validates it,
// builds the service with build and runs it. It exits the process.
func Main[C Config](name string, load func(path string) (C, error), build func(ctx context.Context, cfg C, log *slog.Logger) (Service, error)) {
	cfgPath := flag.String("config", name+".yaml", "configuration file (YAML)")
	check := flag.Bool("check-config", false, "validate the configuration and exit")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := load(*cfgPath)
	if err == nil {
		cfg.Defaults()
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-%s: %v\nhint: fix the configuration; every problem is listed\n", name, err)
		os.Exit(2)
	}
	if *check {
		fmt.Printf("certmill-%s: configuration OK\n", name)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s, err := build(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-%s: %v\n", name, err)
		os.Exit(1)
	}
	err = s.Run(ctx)
	s.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "certmill-%s: %v\n", name, err)
		os.Exit(1)
	}
}
