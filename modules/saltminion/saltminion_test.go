package saltminion

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/bootstrap/bootstraptest"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
	"github.com/ec2init/ec2init/modules/modtest"
)

const privateKey = "-----BEGIN RSA PRIVATE KEY-----\nMIIminionPRIVATEkey\n-----END RSA PRIVATE KEY-----\n"

// setup is a Debian root with fake apt-get, systemctl and salt-call that
// record their argv (argv-level: the real ones would change the host, and
// Debian 12 has no salt-minion package), and a package manager that
// accepts the root.
func setup(t *testing.T) (*modules.Env, SaltMinion, *observer.ObservedLogs, *bytes.Buffer, func() string) {
	e, console := modtest.Env(t)
	modtest.Put(t, e, "/etc/os-release", "ID=debian\nVERSION_ID=12\n")
	f := bootstraptest.NewFakes(t, e, map[string]string{"apt-get": "", "systemctl": "", "salt-call": ""})
	m := SaltMinion{pm: pkgmgr.Manager{AptOptions: []string{"-o", "Dir=" + e.Root.Prefix()}}}
	return e, m, bootstraptest.Observe(e), console, func() string { return f.Argv(t) }
}

func TestMinion(t *testing.T) {
	e, m, logs, console, argv := setup(t)
	cfg := modtest.Config(t, `salt_minion:
  conf:
    master: salt.example.com  # the master
    grains_refresh_every: 10
    mine_functions: {network.ip_addrs: [eth0]}
  grains:
    role: [web, db]
    dc: us-east-1
  public_key: |
    -----BEGIN PUBLIC KEY-----
    MIIpublic
    -----END PUBLIC KEY-----
  private_key: "`+strings.ReplaceAll(privateKey, "\n", `\n`)+`"
`)
	if err := m.Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	wantMinion := `---
master: salt.example.com
grains_refresh_every: 10
mine_functions:
    network.ip_addrs:
        - eth0
...
`
	if got := modtest.Get(t, e, "/etc/salt/minion"); got != wantMinion {
		t.Errorf("minion:\n%s\nwant:\n%s", got, wantMinion)
	}
	wantGrains := "---\nrole:\n    - web\n    - db\ndc: us-east-1\n...\n"
	if got := modtest.Get(t, e, "/etc/salt/grains"); got != wantGrains {
		t.Errorf("grains:\n%s\nwant:\n%s", got, wantGrains)
	}
	if got := modtest.Get(t, e, "/etc/salt/pki/minion.pem"); got != privateKey {
		t.Errorf("minion.pem = %q", got)
	}
	for p, mode := range map[string]os.FileMode{"/etc/salt/pki": 0o700, "/etc/salt/pki/minion.pem": 0o600, "/etc/salt/pki/minion.pub": 0o600} {
		if fi, err := e.Root.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %o", p, fi.Mode().Perm(), err, mode)
		}
	}
	got := argv()
	prefix := e.Root.Prefix()
	for _, want := range []string{"apt-get ", " install salt-minion\n", "systemctl --root=" + prefix + " enable salt-minion\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("commands lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "salt-call") || strings.Contains(got, "restart") {
		t.Errorf("a minion with a master runs no salt-call and, under a root, restarts nothing:\n%s", got)
	}
	bootstraptest.NoLeak(t, "PRIVATEkey", logs, console.String(), nil)

	// Real PyYAML (salt's own parser) reads what was written, when python3
	// has it.
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import yaml").Run() == nil {
		full, _ := e.Root.Path("/etc/salt/minion")
		out, err := exec.Command(py, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1])), sort_keys=True))", full).CombinedOutput()
		if err != nil {
			t.Fatalf("PyYAML: %v %s", err, out)
		}
		if want := `{"grains_refresh_every": 10, "master": "salt.example.com", "mine_functions": {"network.ip_addrs": ["eth0"]}}`; strings.TrimSpace(string(out)) != want {
			t.Errorf("PyYAML read %s, want %s", out, want)
		}
	}
}

func TestMasterless(t *testing.T) {
	e, m, _, _, argv := setup(t)
	modtest.Put(t, e, "/srv/salt/pki/minion/keep", "")
	cfg := modtest.Config(t, `salt_minion:
  pkg_name: salt-common
  service_name: salt-minion.service
  config_dir: /srv/salt
  conf: {file_client: local}
  public_key: pub
  private_key: priv
`)
	if err := m.Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	got := argv()
	prefix := e.Root.Prefix()
	for _, want := range []string{" install salt-common\n", "systemctl --root=" + prefix + " disable salt-minion.service\nsalt-call --local state.apply\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("commands lack %q:\n%s", want, got)
		}
	}
	if got := modtest.Get(t, e, "/srv/salt/minion"); got != "---\nfile_client: local\n...\n" {
		t.Errorf("minion = %q", got)
	}
	// config_dir/pki/minion exists: the keys go there.
	if got := modtest.Get(t, e, "/srv/salt/pki/minion/minion.pem"); got != "priv" {
		t.Errorf("minion.pem = %q", got)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct{ name, cfg, failing, wantErr string }{
		{"install fails", "salt_minion: {private_key: \"" + strings.ReplaceAll(privateKey, "\n", `\n`) + "\", public_key: p}", "apt-get",
			"packages: apt-get install salt-minion: exit status 1"},
		{"enable fails", "salt_minion: {private_key: \"" + strings.ReplaceAll(privateKey, "\n", `\n`) + "\", public_key: p}", "systemctl",
			"service_name: systemctl enable salt-minion: exit status 1"},
		{"salt-call fails", "salt_minion: {conf: {file_client: local}}", "salt-call", "salt-call: exit status 1"},
		{"conf not a mapping", "salt_minion: {conf: [a]}", "", "conf: line 1: want a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m, logs, console, _ := setup(t)
			if tt.failing != "" {
				bin := testkit.FakeBin(t, map[string]string{tt.failing: "#!/bin/sh\necho failing >&2\nexit 1\n"})
				e.Runner.Env["PATH"] = bin + ":" + e.Runner.Env["PATH"]
			}
			err := m.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			bootstraptest.NoLeak(t, "PRIVATEkey", logs, console.String(), err)
		})
	}
}

func TestSchema(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"valid", "salt_minion:\n  conf: {master: m}\n  grains: {a: [1]}\n  public_key: p\n  private_key: k\n", ""},
		{"wrong types", "salt_minion:\n  conf: [master]\n  private_key: [k]\n  pki_dir: 3\n",
			"u.yaml:2:9: error: salt_minion.conf: expected mapping of any value, got a list\nu.yaml:3:16: error: salt_minion.private_key: expected string, got a list\nu.yaml:4:12: error: salt_minion.pki_dir: expected string, got integer 3 (quote it to make it a string)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modtest.Diagnostics(t, tt.doc, SaltMinion{}); got != tt.want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
