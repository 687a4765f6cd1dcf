package puppet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/bootstrap/bootstraptest"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
	"github.com/ec2init/ec2init/modules/modtest"
)

const caPEM = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"

func newEnv(t *testing.T) (*modules.Env, *observer.ObservedLogs, *bytes.Buffer) {
	e, console := modtest.Env(t)
	e.Instance = &imds.Instance{InstanceID: "i-0ABC", LocalHostname: "ip-10-0-0-1.ec2.internal"}
	modtest.Put(t, e, "/etc/os-release", "ID=debian\nVERSION_ID=12\n")
	return e, bootstraptest.Observe(e), console
}

// TestConfReal writes puppet.conf, the CA certificate and the CSR
// attributes in a temporary root and reads puppet.conf back with the real
// puppet (Debian's puppet-agent).
func TestConfReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs puppet (seconds)")
	}
	testkit.RequireRoot(t, "ca_cert's directories are chowned to the puppet user")
	puppetBin, err := exec.LookPath("puppet")
	if err != nil {
		t.Skip("puppet not installed (apt-get install puppet-agent)")
	}
	e, logs, console := newEnv(t)
	modtest.Put(t, e, "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\npuppet:x:103:106::/var/lib/puppet:/usr/sbin/nologin\n")
	modtest.Put(t, e, "/etc/group", "root:x:0:\npuppet:x:106:\n")
	modtest.Put(t, e, "/etc/puppet/puppet.conf", "[main]\n  logdir=/var/log/puppet\n# a comment\n[agent]\nServer : old.example.com\n")
	cfg := modtest.Config(t, `puppet:
  install: false
  conf_file: /etc/puppet/puppet.conf
  ssl_dir: /var/lib/puppet/ssl
  csr_attributes_path: /etc/puppet/csr_attributes.yaml
  start_service: false
  conf:
    agent:
      server: puppet.example.com
      certname: "%i.%f"
      runinterval: 1h
    main:
      environment: production
    ca_cert: |
      `+strings.ReplaceAll(strings.TrimSpace(caPEM), "\n", "\n      ")+`
  csr_attributes:
    custom_attributes:
      1.2.840.113549.1.9.7: s3cretChallenge
    extension_requests:
      pp_role: web
`)
	if err := (Puppet{}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	want := `[main]
logdir = /var/log/puppet
environment = production

[agent]
server = puppet.example.com
certname = i-0abc.ip-10-0-0-1.ec2.internal
runinterval = 1h

`
	if got := modtest.Get(t, e, "/etc/puppet/puppet.conf"); got != want {
		t.Errorf("puppet.conf:\n%s\nwant:\n%s", got, want)
	}
	if got := modtest.Get(t, e, "/etc/puppet/puppet.conf.old"); !strings.Contains(got, "old.example.com") {
		t.Errorf("puppet.conf.old = %q", got)
	}
	if got := modtest.Get(t, e, "/var/lib/puppet/ssl/certs/ca.pem"); got != caPEM {
		t.Errorf("ca.pem = %q", got)
	}
	for p, want := range map[string]os.FileMode{"/var/lib/puppet/ssl": 0o771, "/var/lib/puppet/ssl/certs": 0o755} {
		full, _ := e.Root.Path(p)
		fi, err := os.Stat(full)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %o", p, fi.Mode(), err, want)
		}
	}
	if owner := ownerOf(t, e, "/var/lib/puppet/ssl/certs/ca.pem"); owner != "103:0" {
		t.Errorf("ca.pem owned by %s, want puppet:root (103:0)", owner)
	}
	wantCSR := "custom_attributes:\n  1.2.840.113549.1.9.7: s3cretChallenge\nextension_requests:\n  pp_role: web\n"
	if got := modtest.Get(t, e, "/etc/puppet/csr_attributes.yaml"); got != wantCSR {
		t.Errorf("csr_attributes.yaml:\n%s\nwant:\n%s", got, wantCSR)
	}
	if fi, err := e.Root.Stat("/etc/puppet/csr_attributes.yaml"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("csr_attributes.yaml mode %v %v, want 0600", fi.Mode(), err)
	}
	bootstraptest.NoLeak(t, "s3cret", logs, console.String(), nil)

	// The real puppet reads the file; its own directories kept in a
	// temporary directory so nothing on the host changes.
	conf, _ := e.Root.Path("/etc/puppet/puppet.conf")
	tmp := t.TempDir()
	out, err := exec.Command(puppetBin, "config", "print", "--confdir", tmp, "--vardir", tmp+"/var", "--codedir", tmp+"/code",
		"--logdir", tmp+"/log", "--rundir", tmp+"/run", "--config", conf, "--section", "agent",
		"server", "certname", "runinterval", "environment").CombinedOutput()
	if err != nil {
		t.Fatalf("puppet config print: %v\n%s", err, out)
	}
	wantPrint := "certname = i-0abc.ip-10-0-0-1.ec2.internal\nenvironment = production\nruninterval = 3600\nserver = puppet.example.com\n"
	if string(out) != wantPrint {
		t.Errorf("puppet config print:\n%s\nwant:\n%s", out, wantPrint)
	}
}

func ownerOf(t *testing.T, e *modules.Env, p string) string {
	t.Helper()
	full, err := e.Root.Path(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("stat", "-c", "%u:%g", full).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// fakes are apt-get, systemctl and puppet recording their argv (the real
// ones would change the host); apt-get fails to install the packages in
// missing, puppet agent exits with agentExit.
func fakes(t *testing.T, e *modules.Env, missing string, agentExit int) (string, func() string) {
	t.Helper()
	puppet := `case "$1 $2 $3" in
  "config print config") echo /etc/puppetlabs/puppet/puppet.conf ;;
  "config print ssldir") echo /etc/puppetlabs/puppet/ssl ;;
  "config print csr_attributes") echo /etc/puppetlabs/puppet/csr_attributes.yaml ;;
  agent*) exit ` + strconv.Itoa(agentExit) + ` ;;
esac
`
	aptGet := ""
	if missing != "" {
		aptGet = "case \"$*\" in *\" install " + missing + "\"*) echo 'E: Unable to locate package' >&2; exit 100 ;; esac\n"
	}
	// systemctl knows puppet.service only.
	systemctl := "case \"$*\" in *puppet-agent.service) echo 'Unit file puppet-agent.service does not exist.' >&2; exit 1 ;; esac\n"
	f := bootstraptest.NewFakes(t, e, map[string]string{"apt-get": aptGet, "systemctl": systemctl, "puppet": puppet})
	return filepath.Join(f.Bin, "puppet"), func() string { return f.Argv(t) }
}

func TestArgv(t *testing.T) {
	tests := []struct {
		name, cfg, missing string
		agentExit          int
		want               []string // in order
		wantErr            string
	}{
		{"puppet-agent missing: puppet installed; exec --test exit 2 is success", "puppet: {exec: true}", "puppet-agent", 2,
			[]string{" install puppet-agent\n", " install puppet\n", "puppet config print config\npuppet config print ssldir\npuppet config print csr_attributes\n",
				"systemctl --root=ROOT enable puppet-agent.service\nsystemctl --root=ROOT enable puppet.service\npuppet agent --test\n"}, ""},
		{"package_name and version; exec_args string; no service", "puppet: {package_name: puppet, version: 7.23.0-1, exec: true, exec_args: '--onetime --no-daemonize', start_service: false}", "", 2,
			[]string{" install puppet=7.23.0-1\n", "puppet agent --onetime --no-daemonize\n"}, "exec: puppet agent: exit status 2"},
		{"install false with a version", "puppet: {install: false, version: '7', conf_file: /p.conf, ssl_dir: /ssl, csr_attributes_path: /csr.yaml, start_service: false}", "", 0,
			[]string{}, ""},
		{"nothing installs", "puppet: {}", "puppet", 0, []string{" install puppet-agent\n"}, "no installable puppet package in puppet-agent, puppet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, logs, _ := newEnv(t)
			bin, argv := fakes(t, e, tt.missing, tt.agentExit)
			p := Puppet{pm: pkgmgr.Manager{AptOptions: []string{"-o", "Dir=" + e.Root.Prefix()}}, bin: bin}
			err := p.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			got := argv()
			at := 0
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "ROOT", e.Root.Prefix())
				i := strings.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("commands lack %q (in order):\n%s", w, got)
				}
				at += i + len(w)
			}
			if len(tt.want) == 0 && got != "" {
				t.Errorf("commands run: %s", got)
			}
			if tt.name == "install false with a version" && logs.FilterMessageSnippet("install is false").Len() != 1 {
				t.Error("no warning for a version without install")
			}
		})
	}
}

// TestAIO fetches the all-in-one installer from a local HTTPS origin
// through the one fetcher; a checksum mismatch runs nothing.
func TestAIO(t *testing.T) {
	dir := t.TempDir()
	mark := filepath.Join(dir, "ran")
	script := "#!/bin/sh\necho \"$@\" > " + mark + "\n"
	sum := sha256.Sum256([]byte(script))
	o := testkit.NewOrigin(t, nil)
	u := o.Put("/install.sh", []byte(script))
	tests := []struct{ name, extra, wantArgs, wantErr string }{
		{"https", "", "-v 8.1.0 -c puppet8 --cleanup\n", ""},
		{"checksum, no cleanup", "  aio_install_sha256: " + hex.EncodeToString(sum[:]) + "\n  cleanup: false\n", "-v 8.1.0 -c puppet8\n", ""},
		{"checksum mismatch", "  aio_install_sha256: " + strings.Repeat("0", 64) + "\n", "<absent>", "sha256 mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(mark)
			e, _, _ := newEnv(t)
			bin, argv := fakes(t, e, "", 0)
			e.Fetcher = fetch.New(fetch.Options{Client: o.Client(), BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			cfg := "puppet:\n  install_type: aio\n  version: 8.1.0\n  collection: puppet8\n  aio_install_url: " + u + "\n  start_service: false\n" + tt.extra
			err := (Puppet{bin: bin}).Run(context.Background(), e, modtest.Config(t, cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			b, err := os.ReadFile(mark)
			if got := string(b); err != nil && tt.wantArgs != "<absent>" || err == nil && got != tt.wantArgs {
				t.Errorf("installer args %q (%v), want %q", got, err, tt.wantArgs)
			}
			if tt.wantErr != "" && argv() != "" {
				t.Errorf("commands ran after a failed install: %s", argv())
			}
		})
	}
}

func TestINI(t *testing.T) {
	f, err := parseINI([]byte("[main]\n  a = 1\n\tB: two = 2\n; c\n[agent]\nx=\n[main]\nd = 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.set("user", "k", "v")
	want := "[main]\na = 1\nb = two = 2\nd = 4\n\n[agent]\nx = \n\n[user]\nk = v\n\n"
	if got := string(f.bytes()); got != want {
		t.Errorf("ini:\n%q\nwant:\n%q", got, want)
	}
	for _, bad := range []string{"a = 1\n", "[main]\njunk\n"} {
		if _, err := parseINI([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSchema(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"valid", "puppet:\n  install_type: aio\n  conf: {agent: {server: s, runinterval: 3600, usecacheonfailure: false}, ca_cert: x}\n  exec_args: [--test]\n", ""},
		{"wrong", "puppet:\n  install_type: gem\n  conf: {agents: {}}\n  exec: sometimes\n",
			"u.yaml:2:17: error: puppet.install_type: expected one of packages, aio, got \"gem\"\nu.yaml:3:10: warning: puppet.conf.agents: unknown key \"agents\" (known: main, server, agent, user, ca_cert)\nu.yaml:4:9: error: puppet.exec: expected boolean (true or false), got string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modtest.Diagnostics(t, tt.doc, Puppet{}); got != tt.want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
