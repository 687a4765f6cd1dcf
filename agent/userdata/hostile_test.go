package userdata

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// manyParts is a multipart message of n parts, each part's text given.
func manyParts(n int, part string) []byte {
	var b strings.Builder
	b.Grow(n * (len(part) + 8))
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n")
	for i := 0; i < n; i++ {
		b.WriteString("--b\n" + part + "\n")
	}
	b.WriteString("--b--\n")
	return []byte(b.String())
}

// TestHostileStructure: user data built to make the parser work without
// end: 100,000 parts (plain, and gzipped to fit EC2's 16 KiB), aliases in
// a #cloud-config-archive. Each finishes quickly, in bounded memory, with
// the limit named or a bounded result.
func TestHostileStructure(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("#cloud-config-archive\n- &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for c := 'b'; c <= 'i'; c++ {
		fmt.Fprintf(&laughs, "- &%c [%s]\n", c, strings.TrimSuffix(strings.Repeat("*"+string(c-1)+", ", 9), ", "))
	}
	laughs.WriteString("- {type: text/x-shellscript, content: '#!/bin/sh'}\n")
	scripts := manyParts(100_000, "Content-Type: text/x-shellscript\n\n#!/bin/sh\n:")
	tests := []struct {
		name      string
		raw       []byte
		wantErr   string // substring of the error; "" wants success
		wantParts int
	}{
		{"100k script parts", scripts,
			`user data: part 1000 "part-1001" (text/x-shellscript): number of parts exceeds 1000`, 0},
		{"100k script parts, gzipped", gz(t, scripts),
			`user data: part 1000 "part-1001" (text/x-shellscript): number of parts exceeds 1000`, 0},
		// Empty parts are dropped as cloud-init drops them: nothing to keep,
		// so no limit to reach, but the walk must still be linear.
		{"100k empty parts", manyParts(100_000, "Content-Type: text/plain\n"), "", 0},
		{"100k bare boundaries", manyParts(100_000, ""), "", 0},
		{"archive alias bomb", []byte(laughs.String()), "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			res, err := Parse(tt.raw, Options{})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %v, %d MiB allocated, err %v", len(tt.raw), took.Round(time.Millisecond), alloc>>20, err)
			// Linear work: a few passes over at most DefaultMaxSize bytes.
			if took > 5*time.Second || alloc > 8*DefaultMaxSize {
				t.Errorf("took %v and %d MiB", took, alloc>>20)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrTooLarge) {
					t.Fatalf("error %v, want %q (ErrTooLarge)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "archive alias bomb" {
				// The aliased entries are not parts (cloud-init skips them
				// too); the script after them is kept.
				if len(res.Parts) != 1 || res.Parts[0].Kind != KindScript {
					t.Errorf("parts %+v, want the one script", res.Parts)
				}
				return
			}
			if len(res.Parts) != tt.wantParts {
				t.Errorf("%d parts, want %d", len(res.Parts), tt.wantParts)
			}
		})
	}
}
