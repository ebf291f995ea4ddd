// Package config decodes the YAML configuration files of certmill's
// binaries strictly: an unknown or duplicated field is an error, so that a
// typo never silently falls back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goccy/go-yaml"
)

// Validator is a configuration that checks itself after decoding and
// reports every problem at once (errors.Join).
type Validator interface {
	Validate() error
}

// Defaulter is a configuration that fills its unset fields after decoding
// (for defaults that depend on other fields or live in list elements).
type Defaulter interface {
	Defaults()
}

// Decode decodes data into v strictly, fills defaults, then validates v.
// v may already hold defaults: fields absent from data keep them.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict())
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config: %s", yaml.FormatError(err, false, true))
	}
	if d, ok := v.(Defaulter); ok {
		d.Defaults()
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("config: invalid:\n%w", err)
		}
	}
	return nil
}

// Load reads path and decodes it with Decode.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := Decode(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Problems collects validation problems so that Validate can report all at once.
type Problems []error

// Addf records one problem.
func (p *Problems) Addf(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

// Err returns the joined problems, or nil when there are none.
func (p Problems) Err() error { return errors.Join(p...) }

// ResolvePaths makes each non-empty relative path relative to the folder
// of the configuration file at file.
func ResolvePaths(file string, paths ...*string) {
	dir := filepath.Dir(file)
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}
