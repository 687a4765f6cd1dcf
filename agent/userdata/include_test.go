package userdata

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fakeWeb serves URL -> content and records what was fetched.
type fakeWeb struct {
	pages map[string]string
	got   []string
}

func (w *fakeWeb) fetch(_ context.Context, url string) ([]byte, error) {
	w.got = append(w.got, url)
	page, ok := w.pages[url]
	if !ok {
		return nil, fmt.Errorf("Get %q: 404 Not Found", url) // shaped like net/http's errors
	}
	return []byte(page), nil
}

func TestParseIncludes(t *testing.T) {
	body := "#include https://a/1\n# comment\n\n  https://a/2  \r\n#include-once\nhttps://a/3\n#INCLUDE\nhttps://a/4\n#include-oncehttps://a/5"
	want := []Include{{"https://a/1", false}, {"https://a/2", false}, {"https://a/3", true}, {"https://a/4", false}, {"https://a/5", true}}
	if got := ParseIncludes([]byte(body)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestResolve(t *testing.T) {
	web := &fakeWeb{pages: map[string]string{
		"https://example.com/user-data/one.txt": "#cloud-config\nruncmd: [one]\n",
		"https://example.com/user-data/two.txt": string(mimeMsg(
			"Content-Type: text/x-shellscript\n\n#!/bin/sh\necho two-a",
			"Content-Type: text/x-include-url\n\nhttps://example.com/nested",
			"Content-Type: text/x-shellscript\n\n#!/bin/sh\necho two-b")),
		"https://example.com/nested": "#!/bin/sh\necho nested\n",
	}}
	// make-mime -a include.txt:x-include-url -a script.sh:x-shellscript
	res, err := Parse(readInput(t, "make-mime-include.txt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 2 || res.Parts[0].Kind != KindInclude {
		t.Fatalf("parsed: %v", describeAll(res))
	}
	out, err := Resolve(context.Background(), res, web.fetch, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type got struct{ name, ctype, source string }
	var parts []got
	for i, p := range out.Parts {
		if p.Index != i {
			t.Errorf("part %d has Index %d", i, p.Index)
		}
		parts = append(parts, got{p.Filename, p.ContentType, p.Source})
	}
	// Numbered as cloud-init attaches them: included parts take the include's place.
	want := []got{
		{"part-001", TypeCloudConfig, "https://example.com/..."},
		{"part-002", TypeScript, "https://example.com/..."},
		{"part-003", TypeScript, "https://example.com/..."},
		{"part-004", TypeScript, "https://example.com/..."},
		{"src/script.sh", TypeScript, ""},
	}
	if !reflect.DeepEqual(parts, want) {
		t.Errorf("got  %v\nwant %v", parts, want)
	}
	if string(out.Parts[2].Body) != "#!/bin/sh\necho nested\n" {
		t.Errorf("nested include: %q", out.Parts[2].Body)
	}
	if res.Parts[0].Kind != KindInclude {
		t.Errorf("Resolve changed its input")
	}
}

func TestResolveNumbering(t *testing.T) {
	web := &fakeWeb{pages: map[string]string{
		"https://h/x": string(mimeMsg("\n#!/bin/sh\nx1", "\n#!/bin/sh\nx2")),
		"https://h/y": "#!/bin/sh\ny\n",
	}}
	res, err := Parse(mimeMsg("\n#!/bin/sh\na", "\n#include\nhttps://h/x\nhttps://h/y", "\n#!/bin/sh\nb"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Resolve(context.Background(), res, web.fetch, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range out.Parts {
		got = append(got, p.Filename+"="+strings.TrimPrefix(string(p.Body), "#!/bin/sh\n"))
	}
	if want := "part-001=a part-002=x1 part-003=x2 part-004=y\n part-005=b"; strings.Join(got, " ") != want {
		t.Errorf("got %q\nwant %q", strings.Join(got, " "), want)
	}
}

func TestResolveIncludeOnce(t *testing.T) {
	web := &fakeWeb{pages: map[string]string{"https://h/a": "#!/bin/sh\n"}}
	cache := &fakeWeb{pages: map[string]string{"https://h/b": "#cloud-config\n{}\n"}}
	res, err := Parse([]byte("#include\nhttps://h/a\n#include-once\nhttps://h/b\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Resolve(context.Background(), res, web.fetch, Options{OnceFetcher: cache.fetch})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Parts) != 2 || !reflect.DeepEqual(web.got, []string{"https://h/a"}) || !reflect.DeepEqual(cache.got, []string{"https://h/b"}) {
		t.Errorf("parts %v, fetched %v, once-fetched %v", describeAll(out), web.got, cache.got)
	}
}

func TestResolveErrors(t *testing.T) {
	loop := &fakeWeb{pages: map[string]string{"https://h/loop": "#include\nhttps://h/loop\n"}}
	big := &fakeWeb{pages: map[string]string{"https://h/big": "#!/bin/sh\n" + strings.Repeat("x", 2048)}}
	failing := func(context.Context, string) ([]byte, error) {
		return nil, &fakeNetErr{"Get \"https://bucket.s3.amazonaws.com/ud?X-Amz-Signature=SECRETSIG\": connection refused"}
	}
	tests := []struct {
		name  string
		ud    string
		fetch Fetcher
		opts  Options
		want  string
	}{
		{"http refused", "#include\nhttp://h/a\n", loop.fetch, Options{},
			"user data: part 0 (text/x-include-url): include 1 of 1: include failed: http:// URLs are refused (https only; see AllowInsecureInclude)"},
		{"file refused", "#include\nfile:///etc/shadow\n", loop.fetch, Options{AllowInsecureInclude: true},
			"user data: part 0 (text/x-include-url): include 1 of 1: include failed: file:// URLs are refused (https only)"},
		{"path refused", "#include /etc/passwd\n", loop.fetch, Options{},
			"user data: part 0 (text/x-include-url): include 1 of 1: include failed: not an absolute https:// URL"},
		{"s3 refused", "#include\ns3://bucket/key\n", loop.fetch, Options{},
			"user data: part 0 (text/x-include-url): include 1 of 1: include failed: s3:// URLs are refused (https only)"},
		{"depth", "#include\nhttps://h/loop\n", loop.fetch, Options{MaxIncludeDepth: 3},
			"user data: part 0 (text/x-include-url): include 1 of 1 (https://h/...): part 0 (text/x-include-url): include 1 of 1 (https://h/...): part 0 (text/x-include-url): include 1 of 1 (https://h/...): part 0 (text/x-include-url): include failed: includes nested more than 3 deep"},
		{"count", "#include\nhttps://h/loop\n", loop.fetch, Options{MaxIncludes: 2, MaxIncludeDepth: 10},
			"user data: part 0 (text/x-include-url): include 1 of 1 (https://h/...): part 0 (text/x-include-url): include 1 of 1 (https://h/...): part 0 (text/x-include-url): include 1 of 1 (https://h/...): include failed: more than 2 URLs"},
		{"size", "#include\nhttps://h/big\n", big.fetch, Options{MaxSize: 1024},
			"user data: part 0 (text/x-include-url): include 1 of 1 (https://h/...): included user data exceeds 1 KiB"},
		{"fetch error is redacted", "#include\nhttps://bucket.s3.amazonaws.com/ud?X-Amz-Signature=SECRETSIG\n", failing, Options{},
			"user data: part 0 (text/x-include-url): include 1 of 1 (https://bucket.s3.amazonaws.com/...): include failed: Get \"https://bucket.s3.amazonaws.com/...\": connection refused"},
		{"no fetcher", "#include\nhttps://h/a\n", nil, Options{},
			"user data: part 0 (text/x-include-url): include 1 of 1 (https://h/...): include failed: no fetcher"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse([]byte(tt.ud), Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Resolve(context.Background(), res, tt.fetch, tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRETSIG") {
				t.Errorf("error leaks the URL's signature")
			}
		})
	}
	// The fetcher's error stays in the chain.
	res, _ := Parse([]byte("#include\nhttps://bucket.s3.amazonaws.com/ud?X-Amz-Signature=SECRETSIG\n"), Options{})
	_, err := Resolve(context.Background(), res, failing, Options{})
	var ne *fakeNetErr
	if !errors.Is(err, ErrInclude) || !errors.As(err, &ne) {
		t.Errorf("error chain lost: %v", err)
	}
}

func TestResolveAllowInsecure(t *testing.T) {
	web := &fakeWeb{pages: map[string]string{"http://h/a": "#!/bin/sh\n"}}
	res, _ := Parse([]byte("#include http://h/a\n"), Options{})
	out, err := Resolve(context.Background(), res, web.fetch, Options{AllowInsecureInclude: true})
	if err != nil || len(out.Parts) != 1 || out.Parts[0].Kind != KindScript {
		t.Fatalf("err %v parts %v", err, describeAll(out))
	}
}

func TestResolveCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, _ := Parse([]byte("#include https://h/a\n"), Options{})
	_, err := Resolve(ctx, res, (&fakeWeb{}).fetch, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

type fakeNetErr struct{ msg string }

func (e *fakeNetErr) Error() string { return e.msg }
