package userdata

import (
	"bytes"
	"sort"
	"unicode"
	"unicode/utf8"
)

// startsWith maps a part's first characters to its content type: cloud-init's
// handlers table. Matched case-insensitively, longest prefix first, so
// "#include-once" wins over "#include" and "#cloud-config-archive" over
// "#cloud-config". The text/x-shellscript-per-* entries only let cloud-init's
// make-mime accept those types; nobody starts a file with them, but cloud-init
// would classify it so, and so do we.
var startsWith = func() []struct{ prefix, ctype string } {
	t := []struct{ prefix, ctype string }{
		{"#include", TypeInclude},
		{"#include-once", TypeIncludeOnce},
		{"#!", TypeScript},
		{"#cloud-config", TypeCloudConfig},
		{"#part-handler", TypePartHandler},
		{"#cloud-boothook", TypeBoothook},
		{"#cloud-config-archive", TypeArchive},
		{"#cloud-config-jsonp", TypeCloudConfigJSONP},
		{"## template: jinja", TypeJinja},
		{TypeScriptPerBoot, TypeScriptPerBoot},
		{TypeScriptPerInstance, TypeScriptPerInstance},
		{TypeScriptPerOnce, TypeScriptPerOnce},
	}
	sort.SliceStable(t, func(i, j int) bool { return len(t[i].prefix) > len(t[j].prefix) })
	return t
}()

const bom = "\ufeff"

// typeFromStartsWith classifies a body by its first characters, after leading
// whitespace, like cloud-init; "" if nothing matches. It also skips a UTF-8
// byte order mark, which cloud-init does not (a file saved by a Windows editor
// would be silently ignored there).
func typeFromStartsWith(b []byte) string {
	rest := b[leadingSpace(b):]
	if len(rest) > 32 {
		rest = rest[:32] // longer than any prefix
	}
	for _, s := range startsWith {
		if len(rest) >= len(s.prefix) && bytes.EqualFold(rest[:len(s.prefix)], []byte(s.prefix)) {
			return s.ctype
		}
	}
	return ""
}

// leadingSpace counts the bytes of whitespace (as Python's str.lstrip sees it)
// and byte order marks at the start of b.
func leadingSpace(b []byte) int {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r == '\ufeff' || unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) {
			i += n
			continue
		}
		break
	}
	return i
}

// normalizeScript makes a script the kernel can execute. cloud-init writes the
// body as is, so a byte order mark or whitespace before "#!" (an indented
// heredoc) gives "Exec format error", and a CRLF "#!" line gives "bad
// interpreter: /bin/sh^M". Only those cases are changed; other scripts, which
// may carry binary payloads after the code, are returned untouched.
func normalizeScript(b []byte) []byte {
	if n := leadingSpace(b); n > 0 && bytes.HasPrefix(b[n:], []byte("#!")) {
		b = b[n:]
	}
	if !bytes.HasPrefix(b, []byte("#!")) {
		return b
	}
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	}
	return b
}

// boothookHeader is the first line that makes a part a boothook.
const boothookHeader = "#cloud-boothook"

// stripBoothookHeader drops a boothook's "#cloud-boothook" and the
// whitespace after it, as cloud-init's boot_hook handler does before it
// writes the file: the documented form, "#cloud-boothook" then "#!/bin/sh",
// is then a script with its "#!" line first, and a CRLF file is made LF
// (cloud-init's dos2unix). cloud-init executes what is left directly (subp,
// no shell), so a boothook with no "#!" after the header fails there with
// "Exec format error" (Python's subprocess never falls back to /bin/sh, as
// execvp would), is logged, and the boot goes on: ec2init fails that
// boothook the same way, and warns about it at parse time. Unlike
// cloud-init, the header is also found after leading whitespace and in any
// case, as the part was classified.
func stripBoothookHeader(b []byte) []byte {
	n := leadingSpace(b)
	if len(b)-n < len(boothookHeader) || !bytes.EqualFold(b[n:n+len(boothookHeader)], []byte(boothookHeader)) {
		return b
	}
	rest := b[n+len(boothookHeader):]
	return normalizeScript(rest[leadingSpace(rest):])
}

// stripBOM drops a leading byte order mark: YAML and shell would see it as
// content.
func stripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte(bom)) }
