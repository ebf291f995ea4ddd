// Package secret holds PINs, tokens and passphrases so that they cannot
// leak by accident: a Value prints and logs as "REDACTED", and a Source
// reads a secret from a file or an environment variable, never from argv.
package secret

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// ErrNoSource means a Source named neither a file nor an environment variable.
var ErrNoSource = errors.New("secret: no file or environment variable given")

// Value is a secret. Its zero value is empty. String, GoString, Format and
// LogValue never reveal it; Reveal does, for the one call that needs it.
type Value struct{ b []byte }

// New wraps b; the caller must not keep b.
func New(b []byte) Value { return Value{b: b} }

// Reveal returns the secret as a string for the API that needs it.
func (v Value) Reveal() string { return string(v.b) }

// Bytes returns the secret bytes for the API that needs them.
func (v Value) Bytes() []byte { return v.b }

// Empty reports whether the secret has no bytes.
func (v Value) Empty() bool { return len(v.b) == 0 }

func (Value) String() string             { return "REDACTED" }
func (Value) GoString() string           { return "secret.Value(REDACTED)" }
func (Value) LogValue() slog.Value       { return slog.StringValue("REDACTED") }
func (Value) Format(f fmt.State, _ rune) { f.Write([]byte("REDACTED")) }
func (Value) MarshalText() ([]byte, error) {
	return []byte("REDACTED"), nil
}

// Source says where a secret lives: File wins over Env when both are set.
// In YAML it is written as {file: /path} or {env: NAME}.
type Source struct {
	// File is a path whose contents, less one trailing newline, are the secret.
	File string `yaml:"file,omitempty"`
	// Env is the name of an environment variable that holds the secret.
	Env string `yaml:"env,omitempty"`
}

// IsZero reports whether s names nothing.
func (s Source) IsZero() bool { return s.File == "" && s.Env == "" }

// Load reads the secret. Errors name the file or variable, never the value.
func (s Source) Load() (Value, error) {
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return Value{}, fmt.Errorf("secret: read %s: %w", s.File, err)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return Value{}, fmt.Errorf("secret: %s is empty", s.File)
		}
		return Value{b: b}, nil
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || strings.TrimSpace(v) == "" {
			return Value{}, fmt.Errorf("secret: environment variable %s is unset or empty", s.Env)
		}
		return Value{b: []byte(v)}, nil
	}
	return Value{}, ErrNoSource
}

// LogValue names where the secret comes from, which is safe to log.
func (s Source) LogValue() slog.Value {
	if s.File != "" {
		return slog.StringValue("file:" + s.File)
	}
	return slog.StringValue("env:" + s.Env)
}
