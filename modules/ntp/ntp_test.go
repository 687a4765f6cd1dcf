package ntp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

const (
	debianOS = "ID=debian\nVERSION_ID=12\n"
	amznOS   = "ID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n"
)

func newEnv(t *testing.T, osRelease string, exes ...string) *modules.Env {
	t.Helper()
	e, _ := modtest.Env(t)
	e.Instance = &imds.Instance{LocalIPv4: "10.0.1.23"}
	put(t, e, "/etc/os-release", osRelease, 0o644)
	for _, x := range exes {
		put(t, e, x, "#!/bin/sh\n", 0o755)
	}
	return e
}

func put(t *testing.T, e *modules.Env, p, content string, mode os.FileMode) {
	t.Helper()
	if err := e.Root.WriteFile(p, []byte(content), mode, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNTP(t *testing.T) {
	tests := []struct {
		name     string
		os       string
		exes     []string
		ipv6Only bool
		cfg      string
		wantFile string
		want     []string // lines wanted in it, in order
		unwanted []string
		wantErr  string
	}{
		{name: "debian default", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp: {}",
			wantFile: "/etc/chrony/chrony.conf",
			want:     []string{"# Written by ec2init", "server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4", "keyfile /etc/chrony/chrony.keys"},
			unwanted: []string{"pool "}},
		{name: "null ntp", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp:",
			wantFile: "/etc/chrony/chrony.conf", want: []string{"server 169.254.169.123 prefer"}},
		{name: "amazon linux with sources", os: amznOS, exes: []string{"/usr/sbin/chronyd"},
			cfg:      "ntp:\n  servers: [ntp1.example.com, 10.0.0.2]\n  pools: [time.aws.com]\n  peers: [10.0.0.5]\n  allow: [10.0.0.0/16]\n",
			wantFile: "/etc/chrony.conf",
			want: []string{"server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4", "server ntp1.example.com iburst", "server 10.0.0.2 iburst",
				"pool time.aws.com iburst", "peer 10.0.0.5", "allow 10.0.0.0/16", "driftfile /var/lib/chrony/drift"}},
		{name: "ipv6-only instance", os: amznOS, exes: []string{"/usr/sbin/chronyd"}, ipv6Only: true, cfg: "ntp: {enabled: true}",
			wantFile: "/etc/chrony.conf", want: []string{"server fd00:ec2::123 prefer iburst minpoll 4 maxpoll 4"}, unwanted: []string{"169.254.169.123"}},
		{name: "usrmerged sbin", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp: {ntp_client: chrony}",
			wantFile: "/etc/chrony/chrony.conf", want: []string{"server 169.254.169.123"}},
		{name: "auto falls back to timesyncd", os: debianOS, exes: []string{"/lib/systemd/systemd-timesyncd"},
			cfg:      "ntp: {servers: [ntp1.example.com], pools: [0.pool.ntp.org], peers: [10.0.0.5]}",
			wantFile: "/etc/systemd/timesyncd.conf.d/ec2init.conf",
			want:     []string{"[Time]", "NTP=169.254.169.123 ntp1.example.com 0.pool.ntp.org"}},
		{name: "confpath override", os: debianOS, exes: []string{"/usr/sbin/chronyd"},
			cfg:      "ntp: {config: {confpath: /etc/chrony/custom.conf, service_name: chronyd}}",
			wantFile: "/etc/chrony/custom.conf", want: []string{"server 169.254.169.123"}},
		{name: "chrony missing: installed as cloud-init does", os: amznOS, cfg: "ntp: {enabled: true}",
			wantErr: "chrony is not installed (no chronyd in /usr/sbin, /usr/bin, /sbin, /bin, /usr/lib/systemd, /lib/systemd); installing chrony: package installation needs --chroot"},
		{name: "timesyncd asked, missing", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp: {ntp_client: systemd-timesyncd}",
			wantErr: "systemd-timesyncd is not installed"},
		{name: "disabled", os: amznOS, cfg: "ntp: {enabled: false}", wantFile: "/etc/chrony.conf"},
		{name: "ntpd on amazon linux", os: amznOS, exes: []string{"/usr/sbin/ntpd"},
			cfg:      "ntp: {ntp_client: ntp, servers: [ntp1.example.com], pools: [time.aws.com], allow: [10.0.0.0/16]}",
			wantFile: "/etc/ntp.conf",
			want: []string{"driftfile /var/lib/ntp/ntp.drift", "server 169.254.169.123 prefer iburst", "server ntp1.example.com iburst",
				"pool time.aws.com iburst", "restrict default", "restrict 10.0.0.0/16"}},
		{name: "ntpsec on debian", os: debianOS, exes: []string{"/usr/sbin/ntpd", "/etc/ntpsec/ntp.d/.keep"}, cfg: "ntp: {ntp_client: ntp}",
			wantFile: "/etc/ntpsec/ntp.conf", want: []string{"driftfile /var/lib/ntpsec/ntp.drift", "server 169.254.169.123"}},
		{name: "openntpd", os: debianOS, exes: []string{"/usr/sbin/ntpd"}, cfg: "ntp: {ntp_client: openntpd, pools: [pool.example.com]}",
			wantFile: "/etc/openntpd/ntpd.conf", want: []string{"server 169.254.169.123", "servers pool.example.com"}},
		{name: "a client of your own", os: debianOS, exes: []string{"/usr/local/bin/mytimed"},
			cfg: "ntp:\n  ntp_client: mytimed\n  servers: [a.example.com]\n  config:\n    confpath: /etc/mytimed.conf\n    check_exe: /usr/local/bin/mytimed\n" +
				"    service_name: mytimed\n    template: |\n      ## template: jinja\n      {% for s in servers %}\n      upstream {{ s }}\n      {% endfor %}\n",
			wantFile: "/etc/mytimed.conf", want: []string{"upstream a.example.com"}},
		{name: "a template for chrony, no sources given", os: debianOS, exes: []string{"/usr/sbin/chronyd"},
			cfg:      "ntp:\n  config:\n    template: |\n      ## template:jinja\n      {% for s in servers %}\n      server {{ s }} iburst\n      {% endfor %}\n",
			wantFile: "/etc/chrony/chrony.conf", want: []string{"server 169.254.169.123 iburst"}},
		{name: "a client of your own, not described", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp: {ntp_client: mytimed}",
			wantErr: `ntp_client "mytimed" is not a client cloud-init knows`},
		{name: "a client with nothing to install", os: debianOS, cfg: "ntp: {ntp_client: mytimed, config: {confpath: /etc/m, check_exe: mytimed, service_name: m, template: \"## template: jinja\\n\"}}",
			wantErr: "mytimed is not installed"},
		{name: "injection", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp: {servers: [a.example.com, \"b\\nallow all\"]}",
			wantErr: "ntp.servers[1]: contains a line break"},
		{name: "relative confpath", os: debianOS, exes: []string{"/usr/sbin/chronyd"}, cfg: "ntp: {config: {confpath: chrony.conf}}",
			wantErr: "ntp.config.confpath"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.os, tt.exes...)
			if tt.ipv6Only {
				e.Instance = &imds.Instance{NetworkInterfaces: []imds.NetworkInterface{{IPv6s: []string{"2600:1f14::1"}}}}
			}
			err := NTP{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := e.Root.ReadFile(tt.wantFile)
			if len(tt.want) == 0 {
				if err == nil {
					t.Errorf("%s written: %s", tt.wantFile, b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Each wanted line starts a line, after the previous one.
			got, lines, at := string(b), strings.Split(string(b), "\n"), 0
			for _, w := range tt.want {
				for at < len(lines) && !strings.HasPrefix(lines[at], w) {
					at++
				}
				if at == len(lines) {
					t.Errorf("%s lacks a line %q (in this order):\n%s", tt.wantFile, w, got)
					break
				}
			}
			for _, u := range tt.unwanted {
				if strings.Contains(got, u) {
					t.Errorf("%s has %q:\n%s", tt.wantFile, u, got)
				}
			}
		})
	}
}

// TestChronyReal has the real chronyd parse each generated chrony.conf
// (chronyd -p prints the configuration and exits; no daemon starts).
func TestChronyReal(t *testing.T) {
	chronyd, err := exec.LookPath("chronyd")
	if err != nil {
		chronyd = "/usr/sbin/chronyd"
		if _, err := os.Stat(chronyd); err != nil {
			t.Skip("chronyd is not installed (Debian package chrony)")
		}
	}
	cfg := "ntp:\n  servers: [ntp1.example.com, 10.0.0.2]\n  pools: [time.aws.com]\n  peers: [10.0.0.5]\n  allow: [10.0.0.0/16, 'fd00::/8']\n"
	for _, tt := range []struct{ name, os, file string }{
		{"debian", debianOS, "/etc/chrony/chrony.conf"},
		{"amazon linux", amznOS, "/etc/chrony.conf"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.os, "/usr/sbin/chronyd")
			if err := (NTP{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(e.Root.Prefix(), tt.file)
			out, err := exec.Command(chronyd, "-p", "-f", conf).CombinedOutput()
			if err != nil {
				t.Fatalf("chronyd -p rejects the generated %s: %v\n%s", tt.file, err, out)
			}
			for _, w := range []string{"server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4", "pool time.aws.com iburst", "allow fd00::/8"} {
				if !strings.Contains(string(out), w) {
					t.Errorf("chronyd's parse lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, "ntp:\n  enabled: maybe\n  ntp_client: ntpd\n  servers: pool.example.com\n  config: {template: x, frobnicate: 1}\n", NTP{})
	for _, w := range []string{
		"u.yaml:2:12: error: ntp.enabled: expected boolean",
		"u.yaml:4:12: error: ntp.servers: expected list of string",
		"u.yaml:5:25: warning: ntp.config.frobnicate: unknown key",
		`u.yaml:2:3: error: ntp.config: ntp_client "ntpd" is not a client cloud-init knows: config needs confpath, check_exe, service_name`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostics\n%s\nlack %q", got, w)
		}
	}
	if got := modtest.Diagnostics(t, "ntp:\n", NTP{}); got != "" {
		t.Errorf("ntp: null: %s", got)
	}
}
