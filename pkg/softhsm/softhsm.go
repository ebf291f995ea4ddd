// Package softhsm points SoftHSM2 at a token folder of certmill's own, for
// certmill-dev, the demo, benchmarks and tests.
//
// SoftHSM2 reads the file named by SOFTHSM2_CONF once, when its module is
// first initialised in a process; call Use before anything opens a token.
package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Use makes dir/tokens the token folder of this process (and of child
// processes that inherit the environment) and returns the configuration
// file's path. It creates what is missing and keeps existing tokens.
func Use(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	tokens := filepath.Join(abs, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	conf := filepath.Join(abs, "softhsm2.conf")
	body := "# written by certmill\ndirectories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if old, err := os.ReadFile(conf); err != nil || string(old) != body {
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return "", fmt.Errorf("softhsm: %w", err)
		}
	}
	if cur := os.Getenv("SOFTHSM2_CONF"); cur != "" && cur != conf {
		return "", errors.New("softhsm: SOFTHSM2_CONF already names " + cur + " in this process")
	}
	return conf, os.Setenv("SOFTHSM2_CONF", conf)
}

// TokenDir is the token folder that SOFTHSM2_CONF names, for the fault
// tests that take the whole folder away.
func TokenDir() (string, error) {
	conf := os.Getenv("SOFTHSM2_CONF")
	b, err := os.ReadFile(conf)
	if err != nil {
		return "", fmt.Errorf("softhsm: SOFTHSM2_CONF: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "directories.tokendir" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("softhsm: %s names no directories.tokendir", conf)
}
