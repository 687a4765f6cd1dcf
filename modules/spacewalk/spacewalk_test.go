package spacewalk

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
	"github.com/ec2init/ec2init/modules/modtest"
)

// The tools are fakes: rhn-setup (rhnreg_ks, rhn-profile-sync) is not
// packaged for Debian and there is no Spacewalk server to register with,
// so the module is checked argv by argv. SYNC is rhn-profile-sync's exit
// status.
var fakes = map[string]string{
	"rhn-profile-sync": "#!/bin/sh\necho \"rhn-profile-sync $*\" >> \"$EC2INIT_ROOT/calls\"\necho 'profile sync said'\nexit ${SYNC:-1}\n",
	"rhnreg_ks":        "#!/bin/sh\necho \"rhnreg_ks $*\" >> \"$EC2INIT_ROOT/calls\"\n[ -n \"$REGFAIL\" ] && { echo \"bad key $*\"; exit 2; }\nexit 0\n",
}

func TestSpacewalk(t *testing.T) {
	tests := []struct {
		name, cfg, sync, regfail, local, want, wantErr string
	}{
		{"register", "spacewalk: {server: spacewalk.example.com, proxy: 'proxy.example.com:3128', activation_key: 1-s3cr3t}\n", "1", "", "ip-10-0-0-5.ec2.internal",
			"rhn-profile-sync --verbose\nrhnreg_ks --serverUrl https://spacewalk.example.com/XMLRPC --profilename ip-10-0-0-5.ec2.internal --proxy proxy.example.com:3128 --sslCACert /usr/share/rhn/RHN-ORG-TRUSTED-SSL-CERT --activationkey 1-s3cr3t", ""},
		{"no key nor proxy, address as name", "spacewalk: {server: sw}\n", "1", "", "10.1.2.3",
			"rhn-profile-sync --verbose\nrhnreg_ks --serverUrl https://sw/XMLRPC --profilename ip-10-1-2-3 --sslCACert /usr/share/rhn/RHN-ORG-TRUSTED-SSL-CERT", ""},
		{"already registered", "spacewalk: {server: sw, activation_key: k}\n", "0", "", "h", "rhn-profile-sync --verbose", ""},
		{"profile sync broken", "spacewalk: {server: sw}\n", "3", "", "h", "rhn-profile-sync --verbose", "rhn-profile-sync: exit status 3: profile sync said"},
		{"registration fails; key not quoted", "spacewalk: {server: sw, activation_key: 1-s3cr3t}\n", "1", "yes", "h",
			"rhn-profile-sync --verbose\nrhnreg_ks --serverUrl https://sw/XMLRPC --profilename h --sslCACert /usr/share/rhn/RHN-ORG-TRUSTED-SSL-CERT --activationkey 1-s3cr3t",
			"rhnreg_ks: exit status 2: bad key --serverUrl https://sw/XMLRPC --profilename h --sslCACert /usr/share/rhn/RHN-ORG-TRUSTED-SSL-CERT --activationkey <redacted>"},
		{"no server", "spacewalk: {proxy: p}\n", "1", "", "h", "<absent>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			e.Instance = &imds.Instance{LocalHostname: tt.local}
			bin := testkit.FakeBin(t, fakes)
			e.Runner.Env = map[string]string{"PATH": bin + ":/usr/bin:/bin", "SYNC": tt.sync, "REGFAIL": tt.regfail}
			modtest.Put(t, e, "/usr/sbin/rhnreg_ks", "") // installed
			err := Spacewalk{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error quotes the activation key: %v", err)
			}
			if got := strings.TrimSpace(modtest.Get(t, e, "/calls")); got != tt.want {
				t.Errorf("calls:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestInstall: without rhnreg_ks, rhn-setup is installed first (here the
// package manager refuses a plain root) and nothing is registered.
func TestInstall(t *testing.T) {
	e, _ := modtest.Env(t)
	e.Runner.Env = map[string]string{"PATH": testkit.FakeBin(t, fakes)}
	modtest.Put(t, e, "/etc/os-release", "ID=rhel\n")
	modtest.Put(t, e, "/usr/bin/dnf", "")
	err := Spacewalk{}.Run(context.Background(), e, modtest.Config(t, "spacewalk: {server: sw}\n"))
	if !errors.Is(err, pkgmgr.ErrNeedsChroot) || !strings.Contains(err.Error(), "install rhn-setup") {
		t.Fatalf("err = %v", err)
	}
	if got := modtest.Get(t, e, "/calls"); got != "<absent>" {
		t.Errorf("ran %q before rhn-setup was installed", got)
	}
}

func TestProfileFallsBackToHostname(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/etc/hostname", "web1.example.com\n")
	if got, err := profileName(e); err != nil || got != "web1.example.com" {
		t.Errorf("profile %q, %v", got, err)
	}
	e2, _ := modtest.Env(t)
	if _, err := profileName(e2); err == nil {
		t.Error("no name at all is no error")
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"spacewalk: {proxy: p}\n":                         "u.yaml:1:12: warning: spacewalk: no server",
		"spacewalk: {server: 'https://sw.example.com'}\n": "u.yaml:1:21: error: spacewalk.server: a host name, not a URL",
		"spacewalk: {server: sw, activation_key: [k]}\n":  "u.yaml:1:41: error: spacewalk.activation_key: expected string",
		"spacewalk: {server: sw, key: k}\n":               `warning: spacewalk.key: unknown key "key"`,
	} {
		if got := modtest.Diagnostics(t, doc, Spacewalk{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
	if got := modtest.Diagnostics(t, "spacewalk: {server: sw.example.com, proxy: p, activation_key: k}\n", Spacewalk{}); got != "" {
		t.Errorf("good config: %q", got)
	}
}
