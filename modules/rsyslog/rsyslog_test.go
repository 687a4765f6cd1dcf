package rsyslog

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
	"github.com/ec2init/ec2init/modules/modtest"
)

const remotesWant = `# begin remotes
*.* @@10.0.0.1:514 # central
*.* @logs.example.com # udp
authpriv.* @@[fd00:ec2::9]:10514 # v6
kern.* @10.0.0.3 # bracketed
# end remotes
`

func TestRsyslog(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		want    map[string]string // path: content
		wantLog string
	}{
		{"mapping form", `rsyslog:
  configs:
    - "*.* /var/log/all.log"
    - {filename: 10-mail.conf, content: "mail.* /var/log/mail.log\n"}
    - {filename: /etc/rsyslog.d/30-abs.conf, content: "user.* /var/log/user.log"}
    - {content: "cron.* /var/log/cron.log"}
    - {filename: "  ", content: "lost"}
    - {filename: no-content.conf}
  remotes:
    central: "@@10.0.0.1:514"
    udp: logs.example.com
    v6: "authpriv.* @@[fd00:ec2::9]:10514"
    bracketed: "kern.* @[10.0.0.3] # a comment"
    empty: null
    bad: "a b c"
    noaddr: "@:514"
`, map[string]string{
			"/etc/rsyslog.d/20-cloud-config.conf": "*.* /var/log/all.log\ncron.* /var/log/cron.log\n" + remotesWant,
			"/etc/rsyslog.d/10-mail.conf":         "mail.* /var/log/mail.log\n",
			"/etc/rsyslog.d/30-abs.conf":          "user.* /var/log/user.log\n",
		}, "not reloaded under a --root prefix"},
		{"own dir and filename", `rsyslog:
  config_dir: /etc/rsyslog.custom
  config_filename: 99-x.conf
  remotes: {r: "10.1.1.1:5140"}
`, map[string]string{"/etc/rsyslog.custom/99-x.conf": "# begin remotes\n*.* @10.1.1.1:5140 # r\n# end remotes\n"}, ""},
		{"legacy list form", `rsyslog:
  - "*.* @@192.0.2.7"
  - {filename: 05-extra.conf, content: "local0.* /var/log/local0.log"}
rsyslog_filename: 50-legacy.conf
rsyslog_dir: /etc/rsyslog.legacy
`, map[string]string{
			"/etc/rsyslog.legacy/50-legacy.conf": "*.* @@192.0.2.7\n",
			"/etc/rsyslog.legacy/05-extra.conf":  "local0.* /var/log/local0.log\n",
		}, ""},
		{"nothing to write", "rsyslog: {remotes: {}}\n", map[string]string{}, "no configs"},
	}
	rsyslogd, _ := exec.LookPath("rsyslogd")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			core, logs := observer.New(zap.DebugLevel)
			e.Log = zap.New(core)
			// A reload would fail loudly: none may run under a root.
			e.Runner.Env = map[string]string{"PATH": testkit.FakeBin(t, map[string]string{"systemctl": "#!/bin/sh\nexit 9\n"})}
			if err := (Rsyslog{}).Run(context.Background(), e, modtest.Config(t, tt.cfg)); err != nil {
				t.Fatal(err)
			}
			var written []string
			filepath.WalkDir(e.Root.Prefix(), func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					written = append(written, strings.TrimPrefix(p, e.Root.Prefix()))
				}
				return nil
			})
			if len(written) != len(tt.want) {
				t.Errorf("files written %v, want %d", written, len(tt.want))
			}
			for p, want := range tt.want {
				if got := modtest.Get(t, e, p); got != want {
					t.Errorf("%s =\n%s\nwant\n%s", p, got, want)
				}
				if rsyslogd == "" {
					continue
				}
				// rsyslog itself must accept what was written.
				full := filepath.Join(e.Root.Prefix(), p)
				if out, err := exec.Command(rsyslogd, "-N1", "-f", full).CombinedOutput(); err != nil {
					t.Errorf("rsyslogd -N1 -f %s: %v\n%s", p, err, out)
				}
			}
			if tt.wantLog != "" && logs.FilterMessageSnippet(tt.wantLog).Len() == 0 {
				t.Errorf("no log %q in %v", tt.wantLog, logs.All())
			}
			if tt.name == "mapping form" {
				for _, w := range []string{"remote skipped", "config entry skipped"} {
					if n := logs.FilterMessageSnippet(w).Len(); n != 2 {
						t.Errorf("%d warnings %q, want 2: %v", n, w, logs.All())
					}
				}
			}
		})
	}
	if rsyslogd == "" {
		t.Log("rsyslogd not installed (Debian package rsyslog): files not validated")
	}
}

func TestReload(t *testing.T) {
	rec := "#!/bin/sh\necho \"$0 $*\" | sed 's|.*/||' >> " + filepath.Join(t.TempDir(), "ran") + "\n"
	ran := strings.TrimSuffix(strings.Split(rec, ">> ")[1], "\n")
	tests := []struct {
		name, cmd, want, wantLog string
	}{
		{"auto", "auto", "systemctl try-reload-or-restart rsyslog\n", ""},
		{"default", "", "systemctl try-reload-or-restart rsyslog\n", ""},
		{"argv", "[myreload, --now]", "myreload --now\n", ""},
		{"shell", "'myreload a && myreload b'", "myreload a\nmyreload b\n", ""},
		{"failure is a warning", "[failing]", "", "reload failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(ran)
			root, err := sys.NewRoot("/")
			if err != nil {
				t.Fatal(err)
			}
			e, _ := modtest.Env(t)
			e.Root = root
			bin := testkit.FakeBin(t, map[string]string{"systemctl": rec, "myreload": rec, "failing": "#!/bin/sh\nexit 3\n"})
			e.Runner = &sys.Runner{Root: root, Env: map[string]string{"PATH": bin + ":/usr/bin:/bin"}}
			core, logs := observer.New(zap.DebugLevel)
			e.Log = zap.New(core)
			var n yaml.Node
			if tt.cmd != "" {
				if err := yaml.Unmarshal([]byte(tt.cmd), &n); err != nil {
					t.Fatal(err)
				}
				n = *n.Content[0]
			}
			reload(context.Background(), e, &n)
			got, _ := os.ReadFile(ran)
			if string(got) != tt.want {
				t.Errorf("ran %q, want %q", got, tt.want)
			}
			if tt.wantLog != "" && logs.FilterMessageSnippet(tt.wantLog).Len() != 1 {
				t.Errorf("logs %v, want %q", logs.All(), tt.wantLog)
			}
		})
	}
}

func TestInstall(t *testing.T) {
	cfg := "rsyslog: {install_rsyslog: true, configs: ['*.* @h']}\n"
	e, _ := modtest.Env(t)
	// Missing: the package manager is asked, which under a plain root
	// (no chroot) refuses.
	modtest.Put(t, e, "/etc/os-release", "ID=debian\n")
	modtest.Put(t, e, "/usr/bin/apt-get", "")
	err := (Rsyslog{}).Run(context.Background(), e, modtest.Config(t, cfg))
	if !errors.Is(err, pkgmgr.ErrNeedsChroot) {
		t.Fatalf("err = %v, want the package manager's", err)
	}
	if got := modtest.Get(t, e, "/etc/rsyslog.d/20-cloud-config.conf"); got != "<absent>" {
		t.Errorf("configured before rsyslog was installed: %q", got)
	}
	// Installed: nothing to do but the config.
	modtest.Put(t, e, "/usr/sbin/rsyslogd", "")
	if err := (Rsyslog{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
		t.Fatal(err)
	}
	if got := modtest.Get(t, e, "/etc/rsyslog.d/20-cloud-config.conf"); got != "*.* @h\n" {
		t.Errorf("config %q", got)
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"rsyslog: {remotes: [a]}\n":             "u.yaml:1:20: error: rsyslog.remotes: expected mapping",
		"rsyslog: {configs: [{filename: x}]}\n": `missing required key "content"`,
		"rsyslog: 5\n":                          "u.yaml:1:10: error: rsyslog:",
		"rsyslog_dir: [x]\n":                    "u.yaml:1:14: error: rsyslog_dir: expected string",
	} {
		if got := modtest.Diagnostics(t, doc, Rsyslog{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
}
