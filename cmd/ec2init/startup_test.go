package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// initBudget bounds what the package inits of the ec2init binary allocate
// (issue #15): a boot starts four ec2init processes, one per stage, and
// each pays every linked package's init before it does anything. They
// allocated 1044 KB before that work, 417 KB after (most of it in
// libraries: the S3 client's endpoint tables, yaml.v3, gonja, go-crypto).
// Allocations are the same from run to run within a few hundred bytes, so
// this is a budget, not a timing: a package var compiling a regexp or
// building a table at start, where it could on first use, trips it.
const initBudget = 625_000

// pkgInit is one package's init as GODEBUG=inittrace=1 reports it.
type pkgInit struct {
	pkg   string
	bytes int
}

// startupInits runs the binary with GODEBUG=inittrace=1 and reads the
// runtime's report of each package init.
func startupInits(t *testing.T) []pkgInit {
	t.Helper()
	cmd := exec.Command(binary, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ec2init --help: %v\n%s", err, stderr.String())
	}
	var out []pkgInit
	for _, line := range strings.Split(stderr.String(), "\n") {
		// init PKG @0.91 ms, 0.015 ms clock, 4240 bytes, 7 allocs
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		n, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", line, err)
		}
		out = append(out, pkgInit{pkg: f[1], bytes: n})
	}
	if len(out) == 0 {
		t.Fatalf("no inittrace lines in ec2init's stderr:\n%s", stderr.String())
	}
	return out
}

func TestStartupInitBudget(t *testing.T) {
	inits := startupInits(t)
	total := 0
	for _, p := range inits {
		total += p.bytes
		// The man command's markdown parser is for packaging's build
		// (-tags manpages), never the boot binary's.
		if strings.Contains(p.pkg, "blackfriday") || strings.Contains(p.pkg, "go-md2man") {
			t.Errorf("%s is linked into ec2init: its init runs at every start (build the man command with -tags manpages only)", p.pkg)
		}
	}
	if total <= initBudget {
		return
	}
	sort.Slice(inits, func(i, j int) bool { return inits[i].bytes > inits[j].bytes })
	var top []string
	for _, p := range inits[:min(10, len(inits))] {
		top = append(top, fmt.Sprintf("%s %d", p.pkg, p.bytes))
	}
	t.Errorf("package inits allocate %d bytes at every start, over the budget of %d (build regexps and tables on first use); the largest:\n%s",
		total, initBudget, strings.Join(top, "\n"))
}

// BenchmarkStartup is one start of the binary (--help): process creation,
// the runtime's start, every package init and cobra's command tree.
func BenchmarkStartup(b *testing.B) {
	for b.Loop() {
		cmd := exec.Command(binary, "--help")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
