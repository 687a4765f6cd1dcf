package userdata

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse (and Resolve, Render,
// ForLaunchIndex on the result). Seeds: every file in testdata/inputs plus
// testdata/fuzz/FuzzParse. Run: go test -run '^$' -fuzz FuzzParse ./agent/userdata/
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/inputs/*")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "#!", "#include\nhttps://h/x", "## template: jinja\n{{ v1.region }}{# #}",
		"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n#!/bin/sh\n--b--",
		"#cloud-config-archive\n- &a {content: x}\n- *a\n",
	} {
		f.Add([]byte(s))
	}
	const maxSize = 1 << 20
	vars := VarsMap{"v1": map[string]any{"region": "r", "instance_id": "i"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{MaxSize: maxSize, MaxParts: 100, Vars: vars}
		r1, err1 := Parse(data, opts)
		r2, err2 := Parse(data, opts)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v / %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("not deterministic")
		}
		checkResult(t, r1, maxSize, 100)
		checkResult(t, r1.ForLaunchIndex(0), maxSize, 100)
		if r, err := r1.Render(vars); err == nil {
			checkResult(t, r, DefaultMaxSize, DefaultMaxParts)
		}
		// An include fetches the fuzz input itself: recursion up to the limits.
		fetch := func(context.Context, string) ([]byte, error) { return data, nil }
		if r, err := Resolve(context.Background(), r1, fetch, Options{MaxSize: maxSize, MaxIncludes: 5, MaxIncludeDepth: 2}); err == nil {
			checkResult(t, r, maxSize, 100*6)
		}
	})
}

func checkResult(t *testing.T, r *Result, maxSize int64, maxParts int) {
	t.Helper()
	if len(r.Parts) > maxParts {
		t.Fatalf("%d parts, limit %d", len(r.Parts), maxParts)
	}
	var total int64
	for i, p := range r.Parts {
		total += int64(len(p.Body))
		if p.Index != i {
			t.Fatalf("part %d has Index %d", i, p.Index)
		}
		if strings.HasPrefix(p.Kind.String(), "Kind(") {
			t.Fatalf("part %d: invalid kind %d", i, p.Kind)
		}
		if p.Filename == "" && p.Kind != KindInclude && p.Kind != KindIncludeOnce {
			t.Fatalf("part %d (%s) has no filename", i, p.Kind)
		}
		if p.ContentType == "" || strings.Count(p.ContentType, "/") != 1 {
			t.Fatalf("part %d: content type %q", i, p.ContentType)
		}
		if p.Kind.IsScript() && len(p.Body) > 0 && leadingSpace(p.Body) > 0 && strings.HasPrefix(string(p.Body[leadingSpace(p.Body):]), "#!") {
			t.Fatalf("part %d: script not normalized", i)
		}
		_ = Describe(p)
	}
	if total > maxSize {
		t.Fatalf("decoded %d bytes, cap %d", total, maxSize)
	}
	for _, w := range r.Warnings {
		if w.Part < -1 || w.Part >= len(r.Parts) || w.Message == "" {
			t.Fatalf("bad warning %+v", w)
		}
	}
}
