package software

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/ec2init/ec2init/modules/modtest"
)

// The signature, mirror and version_from keys are checked at schema time
// where they are static: inline keys and signatures parse, one key with
// one signature, {version} only with version_from.
func TestSchemaSignaturesMirrorsVersions(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := pub.MarshalText()
	key := lastLine(text)
	mr := minisign.NewReader(strings.NewReader("x"))
	io.ReadAll(mr)
	sig := mr.Sign(priv) // prehashed, as minisign signs by default
	// The same key with another algorithm than Ed25519 ("Ed").
	raw, _ := base64.StdEncoding.DecodeString(key)
	raw[0], raw[1] = 'X', 'X'
	otherAlgo := base64.StdEncoding.EncodeToString(raw)
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{name: "valid", doc: `software:
  items:
    - name: signed
      sources: [https://a.example/app.tgz, https://b.example/app.tgz, s3://mirror/app.tgz]
      signature_url: https://a.example/app.tgz.minisig
      public_key: ` + key + `
      install: {type: tarball, dest: /opt/app}
    - name: inline
      source: https://a.example/tool
      signature: |
` + indent(string(sig), 8) + `      public_key_file: /etc/ec2init/keys/release.pub
      install: {type: file, dest: /usr/local/bin/tool}
    - name: pgp
      source: https://a.example/app-{version}.rpm
      signature_url: https://a.example/app-{version}.rpm.asc
      gpg_keyring: /etc/ec2init/keys/release.gpg
      version_from: https://a.example/latest.json
      install: {type: rpm}
    - name: newest
      version_from: s3://bucket/app/
      sha256_url: s3://bucket/app/app-{version}.tar.gz.sha256
      install: {type: tarball, dest: /opt/newest}
`},
		{name: "key type unknown", doc: `software:
  items:
    - {name: a, source: "https://x/a", signature_url: "https://x/a.minisig", public_key: "` + otherAlgo + `", install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: public_key: minisign public key: invalid public key algorithm 22616`},
		{name: "gpg key that is not one", doc: `software:
  items:
    - {name: a, source: "https://x/a", signature_url: "https://x/a.asc", gpg_key: "not a key", install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: gpg_key: OpenPGP public key: openpgp: invalid data: tag byte does not have MSB set (want an armored key or gpg --export output; a GnuPG keybox .kbx is not read)`},
		{name: "truncated inline signature", doc: `software:
  items:
    - name: a
      source: https://x/a
      signature: "untrusted comment: x\nRUQ"
      public_key: ` + key + `
      install: {type: rpm}
`, want: `u.yaml:3:7: error: software.items[0]: signature: minisign signature (truncated or not one): invalid signature`},
		{name: "signature without a key", doc: `software:
  items:
    - {name: a, source: "https://x/a", signature_url: "https://x/a.sig", install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: a signature needs its trusted key: public_key or public_key_file (minisign), gpg_key or gpg_keyring (OpenPGP)`},
		{name: "two keys, relative keyring", doc: `software:
  items:
    - {name: a, source: "https://x/a", signature_url: "https://x/a.sig", public_key_file: /k.pub, gpg_keyring: k.gpg, install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: give one key: public_key, public_key_file, gpg_key or gpg_keyring; gpg_keyring "(a 5-byte value)" is not an absolute path`},
		{name: "source and sources", doc: `software:
  items:
    - {name: a, source: "https://x/a", sources: ["https://y/a", "ftp://z/a"], sha256: ` + goodSum + `, install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: give source or sources, not both`},
		{name: "a mirror with a bad scheme", doc: `software:
  items:
    - {name: a, sources: ["https://y/a", "ftp://z/a"], sha256: ` + goodSum + `, install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: sources[1]: scheme "ftp": expected https, s3 or file`},
		{name: "{version} without version_from", doc: `software:
  items:
    - {name: a, source: "https://x/a-{version}.rpm", sha256: ` + goodSum + `, install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: {version} in a URL needs version_from`},
		{name: "version_from over http", doc: `software:
  items:
    - {name: a, version_from: "http://x/latest", install: {type: rpm}}
`, want: `u.yaml:3:7: error: software.items[0]: version_from: http:// needs allow_insecure: true (use https)`},
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

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
