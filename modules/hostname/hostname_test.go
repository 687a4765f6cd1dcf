package hostname

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
	"github.com/ec2init/ec2init/modules/modtest"
)

const (
	debianOS = "ID=debian\nVERSION_ID=12\n"
	amznOS   = "ID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n"
)

// newEnv is an Env over a temporary root with os-release osRelease and
// IMDS local-hostname local.
func newEnv(t *testing.T, osRelease, local string) *modules.Env {
	t.Helper()
	e, _ := modtest.Env(t)
	e.Instance = &imds.Instance{InstanceID: "i-0123456789abcdef0", LocalHostname: local}
	if osRelease != "" {
		writeFile(t, e, "/etc/os-release", osRelease)
	}
	return e
}

func writeFile(t *testing.T, e *modules.Env, p, content string) {
	t.Helper()
	if err := e.Root.WriteFile(p, []byte(content), 0o644, nil); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, e *modules.Env, p string) string {
	t.Helper()
	b, err := e.Root.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "<absent>"
		}
		t.Fatal(err)
	}
	return string(b)
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name                  string
		local                 string
		s                     settings
		wantHost, wantFQDN    string
		wantApplied, wantFrom string
		ok                    bool
	}{
		{"imds short", "ip-10-0-1-23.ec2.internal", settings{}, "ip-10-0-1-23", "ip-10-0-1-23.ec2.internal", "ip-10-0-1-23", "IMDS local-hostname", true},
		{"imds prefer fqdn", "ip-10-0-1-23.ec2.internal", settings{PreferFQDN: true}, "ip-10-0-1-23", "ip-10-0-1-23.ec2.internal", "ip-10-0-1-23.ec2.internal", "IMDS local-hostname", true},
		{"imds several domains", "ip-10-0-1-23.ec2.internal ip-10-0-1-23.corp.example", settings{}, "ip-10-0-1-23", "ip-10-0-1-23.ec2.internal", "ip-10-0-1-23", "IMDS local-hostname", true},
		{"imds resource name", "i-0123456789abcdef0.us-west-2.compute.internal", settings{}, "i-0123456789abcdef0", "i-0123456789abcdef0.us-west-2.compute.internal", "i-0123456789abcdef0", "IMDS local-hostname", true},
		{"imds address", "10.0.1.23", settings{}, "ip-10-0-1-23", "ip-10-0-1-23", "ip-10-0-1-23", "IMDS local-hostname", true},
		{"fqdn key", "ip-10-0-1-23.ec2.internal", settings{FQDN: "web.example.com"}, "web", "web.example.com", "web", "fqdn", true},
		{"fqdn and hostname", "", settings{FQDN: "web.example.com", Hostname: "www"}, "www", "web.example.com", "www", "hostname", true},
		{"dotted hostname", "ip-10-0-1-23.ec2.internal", settings{Hostname: "db.example.com", PreferFQDN: true}, "db", "db.example.com", "db.example.com", "hostname", true},
		// As cloud-init: a plain hostname keeps the FQDN of the metadata.
		{"plain hostname", "ip-10-0-1-23.ec2.internal", settings{Hostname: "web1"}, "web1", "ip-10-0-1-23.ec2.internal", "web1", "hostname", true},
		{"plain hostname no imds", "", settings{Hostname: "web1"}, "web1", "web1", "web1", "hostname", true},
		{"nothing", "", settings{}, "", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := resolve(instance{localHostname: tt.local}, tt.s)
			if ok != tt.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			if n.Hostname != tt.wantHost || n.FQDN != tt.wantFQDN || n.Applied != tt.wantApplied || n.hostKey != tt.wantFrom {
				t.Errorf("resolve = %+v, want %s %s %s from %s", n, tt.wantHost, tt.wantFQDN, tt.wantApplied, tt.wantFrom)
			}
			if err := n.check(); err != nil {
				t.Errorf("check: %v", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	long := strings.Repeat("a", 40) + "." + strings.Repeat("b", 40) + ".example.com"
	tests := []struct {
		name  string
		local string
		s     settings
		want  string
	}{
		{"space", "", settings{Hostname: "my host"}, `hostname: "my host": ' ' is not allowed`},
		{"newline in fqdn", "", settings{FQDN: "a.b\nc"}, `fqdn: "a.b\nc"`},
		{"empty label", "", settings{Hostname: "a..b"}, `hostname: "a..b" has an empty label`},
		{"imds", "bad/name.ec2.internal", settings{}, `IMDS local-hostname: "bad/name"`},
		{"too long with prefer", "", settings{FQDN: long, PreferFQDN: true}, "fqdn (with prefer_fqdn_over_hostname): "},
		{"label too long", "", settings{Hostname: strings.Repeat("x", 64)}, "label longer than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := resolve(instance{localHostname: tt.local}, tt.s)
			if !ok {
				t.Fatal("no names")
			}
			err := n.check()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("check = %v, want %q", err, tt.want)
			}
		})
	}
	// A long FQDN is fine while the short name is what gets set.
	n, _ := resolve(instance{}, settings{FQDN: long})
	if err := n.check(); err != nil {
		t.Errorf("long fqdn, short hostname: %v", err)
	}
}

func TestSetHostname(t *testing.T) {
	tests := []struct {
		name       string
		os, local  string
		cfg        string
		existing   string // /etc/hostname before; "" for none
		want       string // /etc/hostname after; "<absent>" for none
		wantRecord string // applied name recorded; "" for no record
	}{
		{"debian imds", debianOS, "ip-10-0-1-23.ec2.internal", "{}", "localhost\n", "ip-10-0-1-23\n", "ip-10-0-1-23"},
		{"amazon linux imds prefers fqdn", amznOS, "ip-10-0-1-23.ec2.internal", "{}", "localhost\n", "ip-10-0-1-23.ec2.internal\n", "ip-10-0-1-23.ec2.internal"},
		{"amazon linux prefer false", amznOS, "ip-10-0-1-23.ec2.internal", "prefer_fqdn_over_hostname: false", "", "ip-10-0-1-23\n", "ip-10-0-1-23"},
		{"fqdn key", debianOS, "ip-10-0-1-23.ec2.internal", "fqdn: web.example.com\nprefer_fqdn_over_hostname: yes", "", "web.example.com\n", "web.example.com"},
		{"preserve", debianOS, "ip-10-0-1-23.ec2.internal", "preserve_hostname: true", "mine\n", "mine\n", ""},
		{"no file, create false", debianOS, "ip-10-0-1-23.ec2.internal", "create_hostname_file: false", "", "<absent>", "ip-10-0-1-23"},
		{"existing file, create false", debianOS, "ip-10-0-1-23.ec2.internal", "create_hostname_file: false", "old\n", "ip-10-0-1-23\n", "ip-10-0-1-23"},
		{"no name anywhere", debianOS, "", "{}", "old\n", "old\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live, _ := os.Hostname()
			e := newEnv(t, tt.os, tt.local)
			if tt.existing != "" {
				writeFile(t, e, HostnameFile, tt.existing)
			}
			cfg := modtest.Config(t, tt.cfg)
			if err := (SetHostname{}).Run(context.Background(), e, cfg); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, e, HostnameFile); got != tt.want {
				t.Errorf("/etc/hostname = %q, want %q", got, tt.want)
			}
			rec, ok, err := loadRecord(e.Root)
			if err != nil || (tt.wantRecord != "") != ok || rec.Applied != tt.wantRecord {
				t.Errorf("record = %+v, %v, %v; want applied %q", rec, ok, err, tt.wantRecord)
			}
			if now, _ := os.Hostname(); now != live {
				t.Fatalf("the running hostname changed from %q to %q", live, now)
			}
		})
	}
}

func TestSetHostnameRecord(t *testing.T) {
	e := newEnv(t, debianOS, "ip-10-0-1-23.ec2.internal")
	if err := (SetHostname{}).Run(context.Background(), e, modtest.Config(t, "{}")); err != nil {
		t.Fatal(err)
	}
	var rec map[string]string
	if err := json.Unmarshal([]byte(readFile(t, e, StateFile)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["hostname"] != "ip-10-0-1-23" || rec["fqdn"] != "ip-10-0-1-23.ec2.internal" {
		t.Errorf("record %v", rec)
	}
	fi, err := os.Stat(filepath.Join(e.Root.Prefix(), StateFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode: %v %v", fi.Mode(), err)
	}
	// The same names again (a re-run on this instance) leave a hand edit.
	writeFile(t, e, HostnameFile, "handmade\n")
	if err := (SetHostname{}).Run(context.Background(), e, modtest.Config(t, "{}")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e, HostnameFile); got != "handmade\n" {
		t.Errorf("unchanged names re-set the hostname: %q", got)
	}
	// New names (a new instance) are set.
	e.Instance.LocalHostname = "ip-10-0-9-9.ec2.internal"
	if err := (SetHostname{}).Run(context.Background(), e, modtest.Config(t, "{}")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, e, HostnameFile); got != "ip-10-0-9-9\n" {
		t.Errorf("new instance: %q", got)
	}
}

func TestUpdateHostname(t *testing.T) {
	tests := []struct {
		name     string
		record   string // applied name in the record; "" for none
		existing string // /etc/hostname; "" for none
		cfg      string
		want     string
	}{
		{"unchanged", "ip-10-0-1-23", "ip-10-0-1-23\n", "{}", "ip-10-0-1-23\n"},
		{"config changed", "ip-10-0-1-23", "ip-10-0-1-23\n", "hostname: web1", "web1\n"},
		{"changed by hand", "ip-10-0-1-23", "mine\n", "hostname: web1", "mine\n"},
		{"not set by ec2init", "", "theirs\n", "{}", "theirs\n"},
		{"file removed", "ip-10-0-1-23", "", "{}", "ip-10-0-1-23\n"},
		{"first ever", "", "", "{}", "ip-10-0-1-23\n"},
		{"comment kept out", "old", "# set by ec2init\nold\n", "{}", "ip-10-0-1-23\n"},
		{"preserve", "ip-10-0-1-23", "ip-10-0-1-23\n", "hostname: web1\npreserve_hostname: true", "ip-10-0-1-23\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, debianOS, "ip-10-0-1-23.ec2.internal")
			if tt.record != "" {
				if err := saveRecord(e.Root, names{Hostname: tt.record, FQDN: tt.record, Applied: tt.record}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.existing != "" {
				writeFile(t, e, HostnameFile, tt.existing)
			}
			cfg := modtest.Config(t, tt.cfg)
			if !modules.ShouldRun(UpdateHostname{}, cfg) && !strings.Contains(tt.cfg, "preserve") {
				t.Error("update_hostname not wanted")
			}
			if err := (UpdateHostname{}).Run(context.Background(), e, cfg); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, e, HostnameFile); got != tt.want {
				t.Errorf("/etc/hostname = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWanted(t *testing.T) {
	for _, m := range []modules.Module{SetHostname{}, UpdateHostname{}} {
		if !modules.ShouldRun(m, modtest.Config(t, "{}")) {
			t.Errorf("%s not wanted without keys", m.Name())
		}
		if w := m.(modules.Wanted); w.Wanted(modtest.Config(t, "preserve_hostname: true")) {
			t.Errorf("%s wanted with preserve_hostname", m.Name())
		}
	}
	if modules.ShouldRun(UpdateEtcHosts{}, modtest.Config(t, "{}")) {
		t.Error("update_etc_hosts wanted without manage_etc_hosts")
	}
}

func TestUpdateEtcHosts(t *testing.T) {
	debianHosts := "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n10.9.9.9 db # the database\n"
	tests := []struct {
		name     string
		os       string
		cfg      string
		existing string // "" for none
		want     string
	}{
		{"template debian", debianOS, "manage_etc_hosts: true", debianHosts,
			blockBegin + "\n127.0.1.1 ip-10-0-1-23.ec2.internal ip-10-0-1-23\n" + blockEnd + "\n" + debianHosts},
		{"template replaces its block", debianOS, "manage_etc_hosts: template\nfqdn: web.example.com",
			blockBegin + "\n127.0.1.1 old.example.com old\n" + blockEnd + "\n" + debianHosts,
			blockBegin + "\n127.0.1.1 web.example.com web\n" + blockEnd + "\n" + debianHosts},
		{"template amazon linux, no file", amznOS, "manage_etc_hosts: true", "",
			blockBegin + "\n127.0.0.1 ip-10-0-1-23.ec2.internal ip-10-0-1-23\n::1 ip-10-0-1-23.ec2.internal ip-10-0-1-23\n" + blockEnd +
				"\n127.0.0.1 localhost.localdomain localhost\n127.0.0.1 localhost4.localdomain4 localhost4\n::1 localhost.localdomain localhost\n::1 localhost6.localdomain6 localhost6\n"},
		{"localhost adds", debianOS, "manage_etc_hosts: localhost", debianHosts,
			debianHosts + "127.0.1.1 ip-10-0-1-23.ec2.internal ip-10-0-1-23\n"},
		{"localhost after its address", amznOS, "manage_etc_hosts: localhost\nhostname: web1.example.com",
			"127.0.0.1 localhost\n::1 localhost\n",
			"127.0.0.1 localhost\n127.0.0.1 web1.example.com web1\n::1 localhost\n"},
		{"localhost present", debianOS, "manage_etc_hosts: localhost",
			"127.0.1.1 ip-10-0-1-23.ec2.internal ip-10-0-1-23 other # mine\n",
			"127.0.1.1 ip-10-0-1-23.ec2.internal ip-10-0-1-23 other # mine\n"},
		{"localhost no file", debianOS, "manage_etc_hosts: localhost\nhostname: solo", "",
			"# Added by ec2init (manage_etc_hosts: localhost)\n127.0.0.1 localhost\n127.0.1.1 ip-10-0-1-23.ec2.internal solo\n"},
		{"false", debianOS, "manage_etc_hosts: false", debianHosts, debianHosts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.os, "ip-10-0-1-23.ec2.internal")
			if tt.existing != "" {
				writeFile(t, e, HostsFile, tt.existing)
			}
			cfg := modtest.Config(t, tt.cfg)
			for range 2 { // every boot: the second run changes nothing
				if err := (UpdateEtcHosts{}).Run(context.Background(), e, cfg); err != nil {
					t.Fatal(err)
				}
				if got := readFile(t, e, HostsFile); got != tt.want && !(tt.existing == "" && tt.want == "" && got == "<absent>") {
					t.Errorf("/etc/hosts =\n%s\nwant\n%s", got, tt.want)
				}
			}
		})
	}
}

func TestLocalAddr(t *testing.T) {
	if got := localAddr(distro.Distro{ID: "ubuntu", IDLike: []string{"debian"}}); got != "127.0.1.1" {
		t.Errorf("ubuntu: %s", got)
	}
	if got := localAddr(distro.Distro{}); got != "127.0.0.1" {
		t.Errorf("unknown: %s", got)
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, "hostname: 123\nfqdn: ~\nmanage_etc_hosts: always\npreserve_hostname: maybe\ncreate_hostname_file: no\n",
		SetHostname{}, UpdateHostname{}, UpdateEtcHosts{})
	for _, w := range []string{
		"u.yaml:1:11: error: hostname: expected string or null, got integer 123",
		"u.yaml:3:19: error: manage_etc_hosts: expected boolean or one of template, localhost, got",
		"u.yaml:4:20: error: preserve_hostname: expected boolean",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("diagnostics\n%s\nlack %q", got, w)
		}
	}
	if strings.Count(got, "\n") != 2 {
		t.Errorf("want 3 diagnostics, got\n%s", got)
	}
}
