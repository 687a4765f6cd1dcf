package packages

import (
	"context"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules/modtest"
)

// A stand-in armored key: the module checks the armor, not the packets.
const pubKey = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGV0ZXN0\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----"

func indent(s string) string { return "        " + strings.ReplaceAll(s, "\n", "\n        ") }

func TestAptConfigure(t *testing.T) {
	tests := []struct {
		name    string
		os      string
		region  string
		before  map[string]string
		cfg     string
		want    map[string]string // file -> content ("<absent>")
		wantErr string
		console string
	}{
		{name: "signed-by key file and release", os: debianOS, cfg: `apt:
  sources:
    docker:
      source: "deb [arch=amd64 signed-by=$KEY_FILE] https://download.docker.com/linux/debian $RELEASE stable"
      key: |
` + indent(pubKey) + "\n",
			want: map[string]string{
				"/etc/apt/sources.list.d/docker.list": "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable\n",
				"/etc/apt/keyrings/docker.asc":        pubKey + "\n",
				"/etc/apt/trusted.gpg.d/docker.asc":   "<absent>",
			}},
		{name: "key without KEY_FILE is trusted globally; braces", os: ubuntuOS, region: "eu-west-1", cfg: `apt:
  sources:
    extra.list:
      source: "deb ${MIRROR} ${RELEASE}-backports main"
      key: "` + strings.ReplaceAll(pubKey, "\n", `\n`) + `"
`,
			want: map[string]string{
				"/etc/apt/sources.list.d/extra.list":    "deb http://eu-west-1.ec2.archive.ubuntu.com/ubuntu jammy-backports main\n",
				"/etc/apt/trusted.gpg.d/extra.list.asc": pubKey + "\n",
			}},
		{name: "append keeps lines and does not duplicate", os: debianOS,
			before: map[string]string{"/etc/apt/sources.list.d/mine.list": "deb http://a/ bookworm main\n"},
			cfg: `apt:
  sources:
    one: {source: "deb http://a/ $RELEASE main", filename: mine}
    two: {source: "deb $SECURITY $RELEASE-security main", filename: mine.list}
`,
			want: map[string]string{"/etc/apt/sources.list.d/mine.list": "deb http://a/ bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n"}},
		{name: "append false replaces", os: debianOS,
			before: map[string]string{"/etc/apt/sources.list.d/x.list": "deb http://old/ bookworm main\n"},
			cfg:    "apt:\n  sources:\n    x:\n      source: deb http://new/ bookworm main\n      append: false\n",
			want:   map[string]string{"/etc/apt/sources.list.d/x.list": "deb http://new/ bookworm main\n"}},
		{name: "unknown variables stay", os: debianOS, cfg: "apt:\n  sources:\n    x:\n      source: deb http://h/$ARCH/$foo $RELEASE main\n",
			want: map[string]string{"/etc/apt/sources.list.d/x.list": "deb http://h/$ARCH/$foo bookworm main\n"}},
		{name: "key alone", os: debianOS, cfg: "apt:\n  sources:\n    k:\n      key: |\n" + indent(pubKey) + "\n",
			want: map[string]string{"/etc/apt/trusted.gpg.d/k.asc": pubKey + "\n", "/etc/apt/sources.list.d/k.list": "<absent>"}},
		{name: "conf and proxies", os: debianOS, cfg: `apt:
  conf: |
    APT::Install-Recommends "false";
  proxy: http://proxy.internal:3128
  https_proxy: http://user:secret@proxy.internal:3128
`,
			want: map[string]string{
				AptConfFile:  "APT::Install-Recommends \"false\";\n",
				AptProxyFile: "Acquire::http::Proxy \"http://proxy.internal:3128\";\nAcquire::https::Proxy \"http://user:secret@proxy.internal:3128\";\n",
			}},
		{name: "our files go when their keys do", os: debianOS,
			before: map[string]string{AptConfFile: "old\n", AptProxyFile: "old\n"},
			cfg:    "apt:\n  preserve_sources_list: true\n",
			want:   map[string]string{AptConfFile: "<absent>", AptProxyFile: "<absent>"}},
		{name: "KEY_FILE without key", os: debianOS,
			cfg:     "apt:\n  sources:\n    nokey:\n      source: deb [signed-by=$KEY_FILE] http://x/ bookworm main\n    ok:\n      source: deb http://ok/ bookworm main\n",
			want:    map[string]string{"/etc/apt/sources.list.d/nokey.list": "<absent>", "/etc/apt/sources.list.d/ok.list": "deb http://ok/ bookworm main\n"},
			wantErr: "test.yaml:3: apt.sources.nokey: source uses $KEY_FILE but no key is given"},
		{name: "private key refused", os: debianOS,
			cfg:     "apt:\n  sources:\n    p:\n      source: deb http://x/ bookworm main\n      key: \"-----BEGIN PGP PRIVATE KEY BLOCK-----\\nsecretbits\\n\"\n",
			want:    map[string]string{"/etc/apt/trusted.gpg.d/p.asc": "<absent>", "/etc/apt/sources.list.d/p.list": "<absent>"},
			wantErr: "apt.sources.p: key is a private key"},
		{name: "not a key", os: debianOS, cfg: "apt:\n  sources:\n    p:\n      key: AAAA\n", wantErr: "key is not an ASCII-armored PGP public key"},
		{name: "release unknown", os: "ID=debian\n", cfg: "apt:\n  sources:\n    x:\n      source: deb http://x/ $RELEASE main\n",
			wantErr: "apt.sources.x: cannot replace $RELEASE: unknown for this image"},
		{name: "ppa", os: ubuntuOS, cfg: "apt:\n  sources:\n    x:\n      source: ppa:user/repo\n", wantErr: "ppa: sources need add-apt-repository"},
		{name: "path in the name", os: debianOS, cfg: "apt:\n  sources:\n    ../../etc/cron.d/x:\n      source: deb http://x/ bookworm main\n",
			wantErr: "cannot name a file"},
		{name: "path in the filename", os: debianOS, cfg: "apt:\n  sources:\n    x:\n      source: deb http://x/ bookworm main\n      filename: ../../../etc/cron.d/x\n",
			wantErr: "is not a file name in /etc/apt/sources.list.d"},
		{name: "amazon linux skips with a message", os: amznOS, cfg: "apt:\n  conf: x\n",
			want: map[string]string{AptConfFile: "<absent>"}, console: "apt ignored: the image is amzn 2023"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, out := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", tt.os)
			if tt.region != "" {
				e.Instance = &imds.Instance{Region: tt.region}
			}
			for p, c := range tt.before {
				modtest.Put(t, e, p, c)
			}
			err := AptConfigure{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "mQINB")) {
				t.Errorf("error shows secret material: %v", err)
			}
			for p, want := range tt.want {
				if got := modtest.Get(t, e, p); got != want {
					t.Errorf("%s:\n%s\nwant:\n%s", p, got, want)
				}
			}
			if !strings.Contains(out.String(), tt.console) {
				t.Errorf("console %q lacks %q", out, tt.console)
			}
		})
	}
}

// TestAptConfigureTwice: a second run (the same instance's config applied
// again) leaves the files as the first made them.
func TestAptConfigureTwice(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/etc/os-release", debianOS)
	cfg := modtest.Config(t, "apt:\n  sources:\n    x:\n      source: deb http://x/ $RELEASE main\n")
	for range 2 {
		if err := (AptConfigure{}).Run(context.Background(), e, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if got := modtest.Get(t, e, "/etc/apt/sources.list.d/x.list"); got != "deb http://x/ bookworm main\n" {
		t.Errorf("x.list after two runs: %q", got)
	}
}

func TestAptSchema(t *testing.T) {
	got := modtest.Diagnostics(t, `apt:
  preserve_sources_list: false
  primary:
    - arches: [default]
      uri: http://mirror
  sources:
    a:
      source: deb http://x/ $RELEASE main
      keyid: F430BBA5
      append: sometimes
  proxy: [http://p]
`, AptConfigure{})
	for _, w := range []string{
		`u.yaml:3:3: warning: apt.primary: unknown key "primary"`,
		`u.yaml:9:7: warning: apt.sources.a.keyid: unknown key "keyid"`,
		"u.yaml:10:15: error: apt.sources.a.append: expected boolean",
		"u.yaml:11:10: error: apt.proxy: expected string, got a list",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostics lack %q:\n%s", w, got)
		}
	}
}
