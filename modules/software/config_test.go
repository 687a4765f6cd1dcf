package software

import (
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/modules/modtest"
)

const goodSum = "6809dd0b3ec45fd6e992c19071d6b5253aed3ead7bf0686885a51d85c6643c66"

// Every rule between an item's keys is a schema error at the item's line,
// so `ec2init schema` and the boot say the same thing.
func TestSchema(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // the diagnostics, one per line; "" for none
	}{
		{name: "valid hybrid list", doc: `software:
  cache_dir: /var/cache/x
  parallel: 8
  ca_file: /etc/pki/ca.pem
  s3: {endpoint: "https://s3.internal", path_style: true}
  items:
    - name: node-exporter
      policy: bake
      source: https://example.internal/ne.tar.gz
      sha256: ` + goodSum + `
      verify: full
      install: {type: tarball, dest: /opt/ne, strip_components: 1, mode: '0750', owner: "root:root"}
      service: {unit: node-exporter.service, enable: true, start: true}
    - name: app
      source: s3://bucket/app/app-latest.rpm
      sha256_url: s3://bucket/app/app-latest.rpm.sha256
      frequency: always
      install: {type: rpm}
      service: {unit: app.service, restart: true}
    - name: tool
      source: file:///srv/tool
      install: {type: file, dest: /usr/local/bin/tool, mode: 0755}
    - name: jq
      install: {type: package, name: jq, version: "1.6"}
    - name: security-updates
      install: {type: package-upgrade, security_only: true}
`},
		{name: "remote source without checksum", doc: `software:
  items:
    - name: ok
      source: file:///x
      install: {type: file, dest: /x}
    - name: app
      source: https://example.internal/app.rpm
      install: {type: rpm}
`, want: `u.yaml:6:7: error: software.items[1]: a remote source needs a checksum (sha256, sha512, sha256_url or sha512_url) or a signature (signature_url or signature with its key)`},
		{name: "s3 source without checksum", doc: `software:
  items:
    - {name: a, source: "s3://b/k", install: {type: deb}}
`, want: `u.yaml:3:7: error: software.items[0]: a remote source needs a checksum (sha256, sha512, sha256_url or sha512_url) or a signature (signature_url or signature with its key)`},
		{name: "http needs allow_insecure", doc: `software:
  items:
    - {name: a, source: "http://x/a", sha256: ` + goodSum + `, install: {type: rpm}}
    - {name: b, source: "http://x/b", sha256: ` + goodSum + `, allow_insecure: true, install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: source: http:// needs allow_insecure: true (use https)`},
		{name: "two checksums", doc: `software:
  items:
    - {name: a, source: "https://x/a", sha256: ` + goodSum + `, sha512_url: "https://x/a.sha512", install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: give one checksum: sha256, sha512, sha256_url or sha512_url`},
		{name: "short sha256", doc: `software:
  items:
    - {name: a, source: "https://x/a", sha256: abc, install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: sha256: expected 64 hexadecimal digits`},
		{name: "tarball without dest", doc: `software:
  items:
    - {name: a, source: "file:///a.tgz", install: {type: tarball}}
`, want: `u.yaml:3:7: error: software.items[0]: install.dest is required for type tarball`},
		{name: "dest / and relative", doc: `software:
  items:
    - {name: a, source: "file:///a.tgz", install: {type: tarball, dest: /}}
    - {name: b, source: "file:///b", install: {type: file, dest: usr/bin/b}}
`, want: "u.yaml:3:7: error: software.items[0]: install.dest may not be /\n" +
			`u.yaml:4:7: error: software.items[1]: install.dest "usr/bin/b" is not an absolute path`},
		{name: "package needs a name, takes no source", doc: `software:
  items:
    - {name: a, install: {type: package}}
    - {name: b, source: "file:///b", install: {type: package-upgrade}}
    - {name: c, install: {type: package, name: "--allow-unauthenticated"}}
`, want: "u.yaml:3:7: error: software.items[0]: install.name is required for type package\n" +
			"u.yaml:4:7: error: software.items[1]: source, sources, version_from, checksums and signatures are not used by type package-upgrade\n" +
			`u.yaml:5:7: error: software.items[2]: install.name "--allow-unauthenticated" starts with '-'`},
		{name: "keys of another type", doc: `software:
  items:
    - {name: a, source: "file:///a", install: {type: file, dest: /a, strip_components: 1}}
    - {name: b, install: {type: package, name: x, security_only: true}}
`, want: "u.yaml:3:7: error: software.items[0]: install.strip_components is for type tarball\n" +
			"u.yaml:4:7: error: software.items[1]: install.security_only is for type package-upgrade"},
		{name: "duplicate names", doc: `software:
  items:
    - {name: a, install: {type: package-upgrade}}
    - {name: a, install: {type: package-upgrade}}
`, want: `u.yaml:4:7: error: software.items[1]: name "a" is also the name of items[0]`},
		{name: "unit without suffix", doc: `software:
  items:
    - {name: a, install: {type: package-upgrade}, service: {unit: app}}
`, want: `u.yaml:3:7: error: software.items[0]: service.unit "app": expected a unit name with its suffix, such as app.service`},
		{name: "bad mode", doc: `software:
  items:
    - {name: a, source: "file:///a", install: {type: file, dest: /a, mode: '0999'}}
`, want: `u.yaml:3:7: error: software.items[0]: mode "0999": expected an octal mode up to 07777`},
		{name: "unknown scheme", doc: `software:
  items:
    - {name: a, source: "ftp://x/a", sha256: ` + goodSum + `, install: {type: deb}}
`, want: `u.yaml:3:7: error: software.items[0]: source: scheme "ftp": expected https, s3 or file`},
		{name: "type errors are the type check's", doc: `software:
  parallel: 0
  cache_dir: relative
  items:
    - {name: a, policy: later, install: {type: zip}}
`, want: "u.yaml:2:13: error: software.parallel: 0: expected 1 to 64\n" +
			"u.yaml:3:14: error: software.cache_dir: \"relative\" is not an absolute path\n" +
			"u.yaml:5:25: error: software.items[0].policy: expected one of bake, boot, got \"later\"\n" +
			"u.yaml:5:48: error: software.items[0].install.type: expected one of file, tarball, rpm, deb, package, package-upgrade, got \"zip\""},
		{name: "missing install", doc: `software:
  items:
    - {name: a}
`, want: `u.yaml:3:7: error: software.items[0]: missing required key "install"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := modtest.Diagnostics(t, tt.doc, Software{})
			if got != tt.want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	c, ok, err := Parse(modtest.Config(t, `software:
  items:
    - name: a
      source: https://x/a?X-Amz-Signature=secret
      SHA256: `+strings.ToUpper(goodSum)+`
      install: {type: file, dest: /a, mode: '0640'}
    - name: b
      install: {type: package, name: jq}
    - {name: c}
`))
	if err != nil || !ok {
		t.Fatalf("Parse: %v %v", ok, err)
	}
	if c.CacheDir != DefaultCacheDir || c.Parallel != DefaultParallel {
		t.Errorf("defaults: %q %d", c.CacheDir, c.Parallel)
	}
	a := c.Items[0]
	if a.Policy != PolicyBoot || a.Frequency != "per-instance" || a.Verify != VerifyQuick || a.Install.Mode != 0o640 {
		t.Errorf("item a: %+v", a)
	}
	// Keys are case-sensitive: SHA256 is not sha256, so the remote
	// source has no checksum.
	if a.Err == nil || !strings.Contains(a.Err.Error(), "software.items[0] a (line 3): a remote source needs a checksum") {
		t.Errorf("item a error: %v", a.Err)
	}
	if b := c.Items[1]; b.Err != nil || b.Install.Name != "jq" {
		t.Errorf("item b: %+v", b)
	}
	if c.Items[2].Err == nil || !strings.Contains(c.Items[2].Err.Error(), "software.items[2] c (line 9): install.type is required") {
		t.Errorf("item c error: %v", c.Items[2].Err)
	}
	if got := redact.URL(a.Source); got != "https://x/a" {
		t.Errorf("redact = %q", got)
	}
	if _, ok, _ := Parse(modtest.Config(t, "runcmd: [ls]\n")); ok {
		t.Error("absent key parsed")
	}
	if _, _, err := Parse(modtest.Config(t, "software: [a]\n")); err == nil || !strings.Contains(err.Error(), "test.yaml:1: software: expected a mapping") {
		t.Errorf("list: %v", err)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:pass@host/p/a.rpm?sig=x#frag", "https://host/p/a.rpm"},
		{"s3://bucket/key/a.tgz", "s3://bucket/key/a.tgz"},
		{"file:///srv/a", "file:///srv/a"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redact.URL(tt.in); got != tt.want {
			t.Errorf("redact.URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
