package userdata

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math/rand"
	"os"
	"strings"
	"testing"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipBomb is n MiB of zeros as n gzip members of 1 MiB: a valid gzip stream
// (members concatenate), far quicker to build than compressing n MiB.
func gzipBomb(t testing.TB, n int) []byte {
	member := gz(t, make([]byte, 1<<20))
	return bytes.Repeat(member, n)
}

// mimeMsg builds a multipart/mixed message; each part is "headers\n\nbody".
func mimeMsg(parts ...string) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=\"XB\"\nMIME-Version: 1.0\n\n")
	for _, p := range parts {
		b.WriteString("--XB\n" + p + "\n")
	}
	b.WriteString("--XB--\n")
	return []byte(b.String())
}

func readInput(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/inputs/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type wantPart struct {
	kind     Kind
	ctype    string
	filename string
	body     string // "" = don't check
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		raw   []byte
		want  []wantPart
		warns []WarnCode
	}{
		{name: "empty", raw: nil},
		{name: "script", raw: []byte("#!/bin/bash\necho hi\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", "#!/bin/bash\necho hi\n"}}},
		{name: "any interpreter", raw: []byte("#!/usr/bin/env python3\nprint(1)\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", ""}}},
		{name: "cloud-config", raw: []byte("#cloud-config\nruncmd: [ls]\n"),
			want: []wantPart{{KindCloudConfig, TypeCloudConfig, "part-001", ""}}},
		{name: "header is case-insensitive", raw: []byte("#Cloud-Config\n{}\n"),
			want: []wantPart{{KindCloudConfig, TypeCloudConfig, "part-001", ""}}},
		{name: "cloud-config-jsonp", raw: []byte("#cloud-config-jsonp\n[]\n"),
			want: []wantPart{{KindCloudConfigJSONP, TypeCloudConfigJSONP, "part-001", ""}}},
		{name: "boothook", raw: []byte("#cloud-boothook\n#!/bin/sh\necho\n"),
			want: []wantPart{{KindBoothook, TypeBoothook, "part-001", ""}}},
		{name: "include", raw: []byte("#include\nhttps://example.com/a\n"),
			want: []wantPart{{KindInclude, TypeInclude, "", ""}}},
		{name: "include-once", raw: []byte("#include-once\nhttps://example.com/a\n"),
			want: []wantPart{{KindIncludeOnce, TypeIncludeOnce, "", ""}}},
		{name: "jinja unrendered without vars", raw: []byte("## template: jinja\n#!/bin/sh\necho {{ v1.region }}\n"),
			want: []wantPart{{KindJinja, TypeJinja, "part-001", ""}}},
		{name: "part-handler", raw: []byte("#part-handler\ndef list_types(): return []\n"),
			want:  []wantPart{{KindPartHandler, TypePartHandler, "part-001", ""}},
			warns: []WarnCode{WarnPartHandler}},
		{name: "no header", raw: []byte("echo hello\n"),
			want:  []wantPart{{KindUnknown, TypeNotMultipart, "part-001", "echo hello\n"}},
			warns: []WarnCode{WarnNoHeader}},
		{name: "archive", raw: readInput(t, "single-archive.yaml"),
			want: []wantPart{
				{KindBoothook, TypeBoothook, "part-001", "#!/bin/sh\necho \"archive boothook\"\n"},
				{KindScript, TypeScript, "from-archive.sh", ""},
				{KindCloudConfig, TypeCloudConfig, "part-003", ""},
			}},
		{name: "archive: bad entries, include not run", raw: readInput(t, "single-archive-full.yaml"),
			want: []wantPart{
				{KindScript, TypeScript, "typed.sh", ""},
				{KindScript, TypeScript, "part-002", ""},
				{KindCloudConfig, TypeCloudConfig, "part-003", ""},
				{KindUnknown, TypeOctetStream, "blob.bin", "\x00\x01\x02\x03\x04\x05\x06\x07"},
				{KindScript, TypeScript, "part-005", ""},
				{KindUnknown, TypeInclude, "part-006", ""},
				{KindBoothook, TypeBoothook, "part-007", ""},
			},
			warns: []WarnCode{WarnIgnored, WarnUnsupportedType, WarnIgnored}},
		{name: "archive: not YAML", raw: []byte("#cloud-config-archive\n- [unclosed\n"),
			warns: []WarnCode{WarnMalformed}},
		{name: "archive: not a list", raw: []byte("#cloud-config-archive\nkey: value\n"),
			warns: []WarnCode{WarnMalformed}},
		{name: "archive: empty", raw: []byte("#cloud-config-archive\n")},
		{name: "BOM", raw: []byte("\ufeff#cloud-config\n{}\n"),
			want: []wantPart{{KindCloudConfig, TypeCloudConfig, "part-001", "#cloud-config\n{}\n"}}},
		{name: "CRLF script made executable", raw: []byte("#!/bin/sh\r\necho hi\r\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", "#!/bin/sh\necho hi\n"}}},
		{name: "LF script with CR bytes later untouched", raw: []byte("#!/bin/sh\necho a\r\nb\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", "#!/bin/sh\necho a\r\nb\n"}}},
		{name: "indented heredoc script", raw: []byte("\n  #!/bin/sh\n  echo hi\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", "#!/bin/sh\n  echo hi\n"}}},
		{name: "CRLF MIME", raw: readInput(t, "make-mime-crlf.txt"),
			want: []wantPart{
				{KindCloudConfig, TypeCloudConfig, "src/config.yaml", ""},
				{KindScript, TypeScript, "src/script.sh", ""},
				{KindBoothook, TypeBoothook, "src/boot.sh", ""},
			}},
		{name: "gzip of a multipart", raw: readInput(t, "wmm-gzip.txt.gz"),
			want: []wantPart{{KindCloudConfig, TypeCloudConfig, "config.yaml", ""}, {KindScript, TypeScript, "script.sh", ""}}},
		{name: "gzip inside MIME parts", raw: readInput(t, "wmm-gzparts.txt"),
			want: []wantPart{{KindCloudConfig, TypeCloudConfig, "config.yaml.gz", ""}, {KindScript, TypeScript, "script.sh.gz", ""}}},
		{name: "nested multipart", raw: readInput(t, "nested.txt"),
			want: []wantPart{
				{KindBoothook, TypeBoothook, "outer-boot.sh", ""},
				{KindCloudConfig, TypeCloudConfig, "inner-config.yaml", ""},
				{KindScript, TypeScript, "part-003", ""},
				{KindScriptPerBoot, TypeScriptPerBoot, "outer-perboot.sh", ""},
			}},
		{name: "quoted-printable", raw: readInput(t, "qp.txt"),
			want: []wantPart{
				{KindCloudConfig, TypeCloudConfig, "qp-config.yaml", ""},
				{KindScript, TypeScript, "qp-utf8.sh", "#!/bin/sh\necho \"café ☕ non-ASCII script\"\n"},
			}},
		{name: "mislabelled and unlabelled MIME parts", raw: readInput(t, "wmm-explicit.txt"),
			want: []wantPart{
				{KindCloudConfig, TypeCloudConfig, "config.yaml", ""},
				{KindUnknown, TypeOctetStream, "script.sh", ""},
				{KindScript, TypeScript, "noheader.sh", ""},
			},
			warns: []WarnCode{WarnUnsupportedType, WarnNotExecutable}},
		{name: "text/plain part without header", raw: mimeMsg("Content-Type: text/plain\n\necho no header"),
			want:  []wantPart{{KindUnknown, TypePlain, "part-001", ""}},
			warns: []WarnCode{WarnNoHeader}},
		{name: "8-bit body kept as bytes", raw: mimeMsg("Content-Type: text/x-shellscript\n\n#!/bin/sh\necho caf\xc3\xa9"),
			want: []wantPart{{KindScript, TypeScript, "part-001", "#!/bin/sh\necho caf\xc3\xa9"}}},
		{name: "base64 without padding or with junk", raw: mimeMsg(
			"Content-Transfer-Encoding: base64\n\nIyEvYmluL3NoCg",
			"Content-Transfer-Encoding: base64\n\nIyEv*YmluL3No\nCg==\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", "#!/bin/sh\n"}, {KindScript, TypeScript, "part-002", "#!/bin/sh\n"}}},
		{name: "MIME detected by leading Content-Type", raw: []byte("Content-Type: text/cloud-config\n\n{}\n"),
			want: []wantPart{{KindCloudConfig, TypeCloudConfig, "part-001", "{}\n"}}},
		{name: "MIME-Version in a script is still a script", raw: []byte("#!/bin/sh\ncat <<EOF\nMIME-Version: 1.0\nEOF\n"),
			want: []wantPart{{KindScript, TypeScript, "part-001", ""}}},
		{name: "multipart without boundary", raw: []byte("MIME-Version: 1.0\nContent-Type: multipart/mixed\n\n#!/bin/sh\n"),
			warns: []WarnCode{WarnMalformed}},
		{name: "multipart without parts", raw: []byte("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz\n\n#!/bin/sh\n"),
			warns: []WarnCode{WarnMalformed}},
		{name: "launch index from header and payload", raw: readInput(t, "launch-index.txt"),
			want: []wantPart{
				{KindScript, TypeScript, "for-index-0.sh", ""},
				{KindScript, TypeScript, "for-index-1.sh", ""},
				{KindCloudConfig, TypeCloudConfig, "for-all.yaml", ""},
				{KindCloudConfig, TypeCloudConfig, "payload-index-1.yaml", ""},
			}},
		{name: "bad launch index", raw: mimeMsg("Launch-Index: two\nContent-Type: text/x-shellscript\n\n#!/bin/sh"),
			want:  []wantPart{{KindScript, TypeScript, "part-001", ""}},
			warns: []WarnCode{WarnMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Parse(tt.raw, Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(res.Parts) != len(tt.want) {
				t.Fatalf("got %d parts, want %d: %v", len(res.Parts), len(tt.want), describeAll(res))
			}
			for i, w := range tt.want {
				p := res.Parts[i]
				if p.Index != i || p.Kind != w.kind || p.ContentType != w.ctype || p.Filename != w.filename {
					t.Errorf("part %d = %d %v %q %q, want %v %q %q", i, p.Index, p.Kind, p.ContentType, p.Filename, w.kind, w.ctype, w.filename)
				}
				if w.body != "" && string(p.Body) != w.body {
					t.Errorf("part %d body = %q, want %q", i, p.Body, w.body)
				}
			}
			var codes []WarnCode
			for _, w := range res.Warnings {
				codes = append(codes, w.Code)
			}
			if strings.Join(codeStrings(codes), ",") != strings.Join(codeStrings(tt.warns), ",") {
				t.Errorf("warnings = %v, want codes %v", res.Warnings, tt.warns)
			}
		})
	}
}

func codeStrings(c []WarnCode) []string {
	var s []string
	for _, x := range c {
		s = append(s, string(x))
	}
	return s
}

func describeAll(r *Result) []string {
	var s []string
	for _, p := range r.Parts {
		s = append(s, Describe(p))
	}
	return s
}

func TestForLaunchIndex(t *testing.T) {
	res, err := Parse(readInput(t, "launch-index.txt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := func(r *Result) string {
		var s []string
		for i, p := range r.Parts {
			if p.Index != i {
				t.Errorf("index %d at position %d", p.Index, i)
			}
			s = append(s, p.Filename)
		}
		return strings.Join(s, ",")
	}
	if got := names(res.ForLaunchIndex(0)); got != "for-index-0.sh,for-all.yaml" {
		t.Errorf("index 0: %s", got)
	}
	if got := names(res.ForLaunchIndex(1)); got != "for-index-1.sh,for-all.yaml,payload-index-1.yaml" {
		t.Errorf("index 1: %s", got)
	}
}

func TestWarningNamesPart(t *testing.T) {
	res, err := Parse(mimeMsg(
		"Content-Type: text/x-shellscript\nContent-Disposition: attachment; filename=\"ok.sh\"\n\n#!/bin/sh",
		"Content-Type: application/x-thing\nContent-Disposition: attachment; filename=\"odd.bin\"\n\nwhatever"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 {
		t.Fatalf("warnings: %v", res.Warnings)
	}
	w := res.Warnings[0]
	if w.Part != 1 || w.Filename != "odd.bin" || w.ContentType != "application/x-thing" || w.Code != WarnUnsupportedType {
		t.Errorf("warning = %+v", w)
	}
	const want = `user data: part 1 "odd.bin" (application/x-thing): unsupported content type: text, 8 bytes, 1 line, first line 8 chars`
	if w.String() != want {
		t.Errorf("warning text:\n got %s\nwant %s", w, want)
	}
}

func TestRandomNoise(t *testing.T) {
	noise := make([]byte, 16<<10)
	rand.New(rand.NewSource(1)).Read(noise)
	noise[0] = 'x' // not gzip magic
	res, err := Parse(noise, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(res.Parts) != 1 || res.Parts[0].Kind != KindUnknown || len(res.Warnings) != 1 || res.Warnings[0].Code != WarnNoHeader {
		t.Fatalf("got %v %v", describeAll(res), res.Warnings)
	}
	if !strings.Contains(res.Warnings[0].Message, "binary, 16384 bytes") {
		t.Errorf("warning %q does not describe binary noise", res.Warnings[0].Message)
	}
}

func TestLimits(t *testing.T) {
	bomb := gzipBomb(t, 64) // 64 MiB of zeros, ~64 KiB compressed
	partBomb := mimeMsg("Content-Type: application/x-gzip\nContent-Disposition: attachment; filename=\"big.gz\"\n\n" + string(bomb))
	tests := []struct {
		name string
		raw  []byte
		opts Options
		want string
	}{
		{"gzip bomb", bomb, Options{}, "user data: gzip: decompressed size exceeds 16 MiB"},
		{"gzip bomb, smaller cap", bomb, Options{MaxSize: 1 << 20}, "user data: gzip: decompressed size exceeds 1 MiB"},
		{"gzip bomb in a MIME part", partBomb, Options{}, `user data: part 0 "big.gz" (application/x-gzip): gzip: decompressed size exceeds 16 MiB`},
		{"decoded total", mimeMsg("\n#!/bin/sh\n"+strings.Repeat("a", 600), "\n#!/bin/sh\n"+strings.Repeat("b", 600)),
			Options{MaxSize: 1024}, `user data: part 1 "part-002" (text/x-shellscript): decoded user data exceeds 1 KiB`},
		{"too many parts", mimeMsg("\n#!/bin/sh", "\n#!/bin/sh", "\n#!/bin/sh"), Options{MaxParts: 2},
			`user data: part 2 "part-003" (text/x-shellscript): number of parts exceeds 2`},
		{"corrupt gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, Options{}, "user data: gzip: unexpected EOF"},
		{"nesting", []byte(strings.Repeat("MIME-Version: 1.0\nContent-Type: message/rfc822\n\n", 30)), Options{}, "user data: MIME parts nested more than 20 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.raw, tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(tt.name, "bomb") || strings.Contains(tt.name, "total") {
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("errors.Is(err, ErrTooLarge) = false")
				}
			}
		})
	}
}
