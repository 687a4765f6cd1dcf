// Package modtest has what every module's tests need: an Env over a
// temporary root, a cloud-config from text, and a module's schema
// diagnostics for a document.
package modtest

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// Env returns an Env whose root is a fresh temporary directory and whose
// console output is collected in the returned buffer.
func Env(t testing.TB) (*modules.Env, *bytes.Buffer) {
	t.Helper()
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return &modules.Env{Root: root, Runner: &sys.Runner{Root: root}, Console: &out}, &out
}

// Config parses doc (named test.yaml) into a merged cloud-config.
func Config(t testing.TB, doc string) *config.CloudConfig {
	t.Helper()
	d, err := config.ParseDoc("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return config.Merge(d)
}

// Diagnostics validates doc (named u.yaml) against the schemas of ms and
// returns the findings, one per line.
func Diagnostics(t testing.TB, doc string, ms ...modules.Module) string {
	t.Helper()
	r, err := modules.NewRegistry(ms...)
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.ParseDoc("u.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, diag := range r.ValidateDoc(d) {
		got = append(got, diag.String())
	}
	return strings.Join(got, "\n")
}

// Put writes content to p under env's root (0644, parents created).
func Put(t testing.TB, env *modules.Env, p, content string) {
	t.Helper()
	if err := env.Root.WriteFile(p, []byte(content), 0o644, nil); err != nil {
		t.Fatal(err)
	}
}

// Get returns the content of p under env's root, or "<absent>".
func Get(t testing.TB, env *modules.Env, p string) string {
	t.Helper()
	b, err := env.Root.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "<absent>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
