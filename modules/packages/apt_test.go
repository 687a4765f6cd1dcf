package packages

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// testKey is a real armored public key made by gpg in a scratch
// GNUPGHOME, and its fingerprint.
type testKey struct{ armored, fpr string }

func genKey(t testing.TB, uid string) testKey {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (Debian package gnupg)")
	}
	home := t.TempDir()
	gpgc := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home, "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return string(out)
	}
	gpgc("--quick-gen-key", uid, "ed25519", "sign", "never")
	var fpr string
	for _, l := range strings.Split(gpgc("--with-colons", "--list-keys", uid), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" && fpr == "" {
			fpr = f[9]
		}
	}
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	return testKey{armored: strings.TrimSpace(gpgc("--armor", "--export", uid)), fpr: fpr}
}

// keyringFpr is the fingerprint gpg reads in the binary keyring at p
// under env's root ("" when there is none).
func keyringFpr(t testing.TB, e *modules.Env, p string) string {
	t.Helper()
	full, err := e.Root.Path(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(full); err != nil {
		return ""
	}
	b, _ := os.ReadFile(full)
	if strings.Contains(string(b), "BEGIN PGP") {
		t.Fatalf("%s is armored; apt's .gpg files are binary", p)
	}
	out, err := exec.Command("gpg", "--batch", "--homedir", t.TempDir(), "--with-colons", "--show-keys", full).Output()
	if err != nil {
		t.Fatalf("gpg --show-keys %s: %v", p, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			return f[9]
		}
	}
	return ""
}

func indent(s string) string { return "        " + strings.ReplaceAll(s, "\n", "\n        ") }

func TestAptConfigure(t *testing.T) {
	key := genKey(t, "Repo Signing <repo@example.com>")
	pubKey := key.armored
	tests := []struct {
		name    string
		os      string
		region  string
		before  map[string]string
		cfg     string
		want    map[string]string // file -> content ("<absent>"; "<key>": the binary test key)
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
				"/etc/apt/sources.list.d/docker.list":  "deb [arch=amd64 signed-by=/etc/apt/cloud-init.gpg.d/docker.gpg] https://download.docker.com/linux/debian bookworm stable\n",
				"/etc/apt/cloud-init.gpg.d/docker.gpg": "<key>",
				"/etc/apt/trusted.gpg.d/docker.gpg":    "<absent>",
			}},
		{name: "key without KEY_FILE is trusted globally; braces", os: ubuntuOS, region: "eu-west-1", cfg: `apt:
  sources:
    extra.list:
      source: "deb ${MIRROR} ${RELEASE}-backports main"
      key: "` + strings.ReplaceAll(pubKey, "\n", `\n`) + `"
`,
			want: map[string]string{
				"/etc/apt/sources.list.d/extra.list": "deb http://eu-west-1.ec2.archive.ubuntu.com/ubuntu jammy-backports main\n",
				"/etc/apt/trusted.gpg.d/extra.gpg":   "<key>",
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
			want: map[string]string{"/etc/apt/trusted.gpg.d/k.gpg": "<key>", "/etc/apt/sources.list.d/k.list": "<absent>"}},
		{name: "filename names the key", os: debianOS, cfg: "apt:\n  sources:\n    k:\n      filename: vendor.list\n      source: deb [signed-by=$KEY_FILE] http://v/ $RELEASE main\n      key: |\n" + indent(pubKey) + "\n",
			want: map[string]string{"/etc/apt/cloud-init.gpg.d/vendor.gpg": "<key>", "/etc/apt/sources.list.d/vendor.list": "deb [signed-by=/etc/apt/cloud-init.gpg.d/vendor.gpg] http://v/ bookworm main\n"}},
		{name: "legacy apt_sources list", os: debianOS, cfg: `apt_proxy: http://p:3128
apt_https_proxy: http://swapped:3128
apt_sources:
  - source: deb http://one/ $RELEASE main
    key: |
` + indent(pubKey) + `
  - source: deb http://two/ $RELEASE main
  - source: deb [signed-by=$KEY_FILE] http://three/ $RELEASE main
    filename: three.list
    key: |
` + indent(pubKey) + "\n",
			want: map[string]string{
				"/etc/apt/sources.list.d/cloud_config_sources.list": "deb http://one/ bookworm main\ndeb http://two/ bookworm main\n",
				"/etc/apt/trusted.gpg.d/cloud_config_sources.gpg":   "<key>",
				"/etc/apt/sources.list.d/three.list":                "deb [signed-by=/etc/apt/cloud-init.gpg.d/three.gpg] http://three/ bookworm main\n",
				"/etc/apt/cloud-init.gpg.d/three.gpg":               "<key>",
				AptProxyFile:                                        "Acquire::http::Proxy \"http://p:3128\";\nAcquire::ftp::Proxy \"http://swapped:3128\";\n",
			}},
		{name: "legacy keys ignored beside apt", os: debianOS, cfg: "apt:\n  proxy: http://new\napt_proxy: http://old\n",
			want: map[string]string{AptProxyFile: "Acquire::http::Proxy \"http://new\";\n"}},
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
			wantErr: "test.yaml:3: apt.sources.nokey: source uses $KEY_FILE but no key or keyid is given"},
		{name: "private key refused", os: debianOS,
			cfg:     "apt:\n  sources:\n    p:\n      source: deb http://x/ bookworm main\n      key: \"-----BEGIN PGP PRIVATE KEY BLOCK-----\\nsecretbits\\n\"\n",
			want:    map[string]string{"/etc/apt/trusted.gpg.d/p.gpg": "<absent>", "/etc/apt/sources.list.d/p.list": "<absent>"},
			wantErr: "apt.sources.p: key is a private key"},
		{name: "not a key", os: debianOS, cfg: "apt:\n  sources:\n    p:\n      key: AAAA\n", wantErr: "key is not an ASCII-armored PGP public key"},
		{name: "release unknown", os: "ID=debian\n", cfg: "apt:\n  sources:\n    x:\n      source: deb http://x/ $RELEASE main\n",
			wantErr: "apt.sources.x: cannot replace $RELEASE: unknown for this image"},
		{name: "ppa", os: ubuntuOS, cfg: "apt:\n  sources:\n    x:\n      source: ppa:user/repo\n", wantErr: "add-apt-repository sources (ppa:, cloud-archive:) are not supported"},
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
				if want == "<key>" {
					if got := keyringFpr(t, e, p); got != key.fpr {
						t.Errorf("%s: key %q, want %q", p, got, key.fpr)
					}
					continue
				}
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
      url: http://typo
  sources:
    a:
      source: deb http://x/ $RELEASE main
      keyid: F430BBA5
      append: sometimes
  proxy: [http://p]
`, AptConfigure{})
	for _, w := range []string{
		`u.yaml:6:7: warning: apt.primary[0].url: unknown key "url"`,
		"u.yaml:11:15: error: apt.sources.a.append: expected boolean",
		"u.yaml:12:10: error: apt.proxy: expected string, got a list",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostics lack %q:\n%s", w, got)
		}
	}
}

// TestAptKeyserver: keyid + keyserver fetch the key from the keyserver's
// HTTPS lookup through the fetcher; a wrong key or a keyserver down fails
// the entry and writes no source.
func TestAptKeyserver(t *testing.T) {
	key := genKey(t, "Vendor <vendor@example.com>")
	other := genKey(t, "Someone Else <else@example.com>")
	o := testkit.NewOrigin(t, nil)
	o.Put("/pks/lookup", []byte(key.armored+"\n"))
	down := testkit.NewOrigin(t, nil)
	downURL := down.URL
	down.Close()
	spaced := key.fpr[:4] + " " + key.fpr[4:8] + "  " + key.fpr[8:]
	tests := []struct {
		name, keyserver, keyid, body string
		wantErr                      string
	}{
		{name: "fingerprint with spaces, https URL", keyserver: o.URL, keyid: spaced},
		{name: "long id, host:port", keyserver: strings.TrimPrefix(o.URL, "https://"), keyid: "0x" + key.fpr[24:]},
		{name: "hkps URL", keyserver: "hkps://" + strings.TrimPrefix(o.URL, "https://"), keyid: key.fpr[32:]},
		{name: "wrong key served", keyserver: o.URL, keyid: other.fpr, wantErr: "has another id"},
		{name: "not a key", keyserver: o.URL, keyid: key.fpr, body: "<html>no</html>", wantErr: "not an ASCII-armored PGP public key"},
		{name: "keyserver down", keyserver: downURL, keyid: key.fpr, wantErr: "fetch https://127.0.0.1"},
		{name: "bad keyid", keyserver: o.URL, keyid: "xyz", wantErr: "is not a key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := key.armored + "\n"
			if tt.body != "" {
				body = tt.body
			}
			o.Put("/pks/lookup", []byte(body))
			e, _ := modtest.Env(t)
			e.Fetcher = fetch.New(fetch.Options{Client: o.Client(), Attempts: 1})
			modtest.Put(t, e, "/etc/os-release", debianOS)
			cfg := "apt:\n  sources:\n    vendor:\n      source: deb [signed-by=$KEY_FILE] https://vendor.example/apt $RELEASE main\n" +
				"      keyid: \"" + tt.keyid + "\"\n      keyserver: \"" + tt.keyserver + "\"\n"
			err := AptConfigure{}.Run(context.Background(), e, modtest.Config(t, cfg))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if got := modtest.Get(t, e, "/etc/apt/sources.list.d/vendor.list"); got != "<absent>" {
					t.Errorf("source written without its key: %q", got)
				}
				if got := modtest.Get(t, e, "/etc/apt/cloud-init.gpg.d/vendor.gpg"); got != "<absent>" {
					t.Errorf("key file written: %d bytes", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keyringFpr(t, e, "/etc/apt/cloud-init.gpg.d/vendor.gpg"); got != key.fpr {
				t.Errorf("key %q, want %q", got, key.fpr)
			}
			want := "deb [signed-by=/etc/apt/cloud-init.gpg.d/vendor.gpg] https://vendor.example/apt bookworm main\n"
			if got := modtest.Get(t, e, "/etc/apt/sources.list.d/vendor.list"); got != want {
				t.Errorf("vendor.list %q, want %q", got, want)
			}
			// The scratch gpg home is gone.
			if ents, _ := filepath.Glob(filepath.Join(e.Root.Prefix(), "tmp", "ec2init-gpg-*")); len(ents) > 0 {
				t.Errorf("scratch left: %v", ents)
			}
		})
	}
}

func TestKeyserverURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "https://keyserver.ubuntu.com/pks/lookup?op=get&options=mr&search=0xABCD1234"},
		{"keyserver.ubuntu.com", "https://keyserver.ubuntu.com/pks/lookup?op=get&options=mr&search=0xABCD1234"},
		{"hkp://keyserver.ubuntu.com:80", "https://keyserver.ubuntu.com/pks/lookup?op=get&options=mr&search=0xABCD1234"},
		{"hkp://pgp.mit.edu:11371", "https://pgp.mit.edu/pks/lookup?op=get&options=mr&search=0xABCD1234"},
		{"http://keys.internal:8080", "https://keys.internal:8080/pks/lookup?op=get&options=mr&search=0xABCD1234"},
	} {
		got, err := keyserverURL(tt.in, "ABCD1234")
		if err != nil || got != tt.want {
			t.Errorf("keyserverURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := keyserverURL("ldap://x", "ABCD1234"); err == nil {
		t.Error("ldap keyserver accepted")
	}
}

// aptReads has the real apt read what the module wrote under e's root:
// apt-config parses each conf file, apt-get parses every source.
func aptReads(t *testing.T, e *modules.Env) {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt not installed")
	}
	for _, f := range []string{AptConfFile, AptProxyFile} {
		full, _ := e.Root.Path(f)
		if _, err := os.Stat(full); err != nil {
			continue
		}
		if out, err := exec.Command("apt-config", "-c", full, "dump").CombinedOutput(); err != nil {
			t.Errorf("apt-config -c %s: %v\n%s", f, err, out)
		}
	}
	for _, d := range []string{"/var/lib/apt/lists/partial", "/var/cache/apt/archives/partial", AptSourcesDir} {
		if err := e.Root.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("apt-get", "-o", "Dir="+e.Root.Prefix()+"/", "-o", "Dir::State::status=/dev/null",
		"-o", "Debug::NoLocking=1", "indextargets")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("apt-get indextargets: %v\n%s", err, out)
	}
}

func TestAptSourcesList(t *testing.T) {
	const debianList = "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n"
	tests := []struct {
		name, os, before, cfg string
		want                  map[string]string
		wantErr               string
	}{
		{name: "template with mirrors and disable_suites", os: debianOS, before: debianList, cfg: `apt:
  primary:
    - arches: [s390x]
      uri: http://wrong/
    - arches: [default]
      uri: http://mirror.internal/debian
  security:
    - arches: [default]
      uri: http://sec.internal/debian-security
  disable_suites: [updates, $RELEASE-backports]
  sources_list: |
    deb $MIRROR $RELEASE main
    deb [arch=amd64] $PRIMARY $RELEASE-updates main
    deb $SECURITY ${RELEASE}-security main
    deb $mirror $codename-backports main
`, want: map[string]string{AptSourcesList: "deb http://mirror.internal/debian bookworm main\n" +
			"# suite disabled by cloud-init: deb [arch=amd64] http://mirror.internal/debian bookworm-updates main\n" +
			"deb http://sec.internal/debian-security bookworm-security main\n" +
			"# suite disabled by cloud-init: deb http://mirror.internal/debian bookworm-backports main\n"}},
		{name: "security defaults to primary; mirror in sources", os: debianOS, cfg: `apt:
  primary: [{arches: [default], uri: "http://m/"}]
  sources:
    x: {source: "deb $SECURITY $RELEASE-security main"}
`, want: map[string]string{"/etc/apt/sources.list.d/x.list": "deb http://m/ bookworm-security main\n", AptSourcesList: "<absent>"}},
		{name: "disable_suites on the image's list", os: debianOS, before: debianList, cfg: "apt:\n  disable_suites: [security]\n",
			want: map[string]string{AptSourcesList: "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\n# suite disabled by cloud-init: deb http://deb.debian.org/debian-security bookworm-security main\n"}},
		{name: "preserve_sources_list keeps it", os: debianOS, before: debianList, cfg: "apt:\n  preserve_sources_list: true\n  disable_suites: [security]\n  sources_list: deb http://x/ bookworm main\n",
			want: map[string]string{AptSourcesList: debianList}},
		{name: "deb822 on ubuntu", os: ubuntuOS, before: "deb http://old/ jammy main\n", cfg: `apt:
  sources_list: |
    Types: deb
    URIs: $MIRROR
    Suites: $RELEASE $RELEASE-updates
    Components: main
`, want: map[string]string{"/etc/apt/sources.list.d/ubuntu.sources": "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: jammy jammy-updates\nComponents: main\n",
			AptSourcesList: ubuntuSourcesListStub}},
		{name: "mirror search refused", os: debianOS, cfg: "apt:\n  primary: [{arches: [default], search: [\"http://a/\"]}]\n",
			wantErr: "apt.primary: mirror search and search_dns are not supported"},
		{name: "debconf needs chroot", os: debianOS, cfg: "apt:\n  debconf_selections:\n    a: tzdata tzdata/Areas select Europe\n",
			wantErr: "apt.debconf_selections: debconf-set-selections writes the running system's debconf database: needs --chroot"},
		{name: "custom add_apt_repo_match", os: debianOS, cfg: "apt:\n  add_apt_repo_match: '^custom:'\n  sources:\n    x: {source: 'custom:thing'}\n    p: {source: 'deb http://ppa:8080/ bookworm main'}\n",
			want:    map[string]string{"/etc/apt/sources.list.d/p.list": "deb http://ppa:8080/ bookworm main\n"},
			wantErr: `"custom:thing" matches add_apt_repo_match`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", tt.os)
			if tt.before != "" {
				modtest.Put(t, e, AptSourcesList, tt.before)
			}
			err := AptConfigure{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			for p, want := range tt.want {
				if got := modtest.Get(t, e, p); got != want {
					t.Errorf("%s:\n%s\nwant:\n%s", p, got, want)
				}
			}
			if err == nil {
				aptReads(t, e)
			}
		})
	}
}

// TestAptFilesReadByApt: the proxy and conf files and a signed-by source
// are what the real apt parses.
func TestAptFilesReadByApt(t *testing.T) {
	key := genKey(t, "Repo <r@example.com>")
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/etc/os-release", debianOS)
	cfg := "apt:\n  conf: |\n    APT::Install-Recommends \"false\";\n  proxy: http://p:3128\n  https_proxy: http://p:3129\n" +
		"  sources:\n    v:\n      source: deb [signed-by=$KEY_FILE] https://v.example/ $RELEASE main\n      key: |\n" + indent(key.armored) + "\n"
	if err := (AptConfigure{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
		t.Fatal(err)
	}
	aptReads(t, e)
	full, _ := e.Root.Path(AptProxyFile)
	out, err := exec.Command("apt-config", "-c", full, "dump").Output()
	if err != nil || !strings.Contains(string(out), `Acquire::https::Proxy "http://p:3129";`) {
		t.Errorf("apt-config dump: %v\n%s", err, out)
	}
}
