package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/all"
)

func runcmdTo(name string) string {
	return "runcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/" + name + "\"\n"
}

// amazonCloudCfg is shaped like Amazon Linux 2023's /etc/cloud/cloud.cfg:
// cloud-init's internals, other datasources' settings and module lists
// naming modules ec2init does not have (vendors' own, made up here). None of that may warn.
const amazonCloudCfg = `# The top level settings are used as module and system configuration.
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    timeout: 5
    max_wait: 10
    apply_full_imds_network_config: true
  NoCloud:
    seedfrom: http://10.0.0.1/
  Azure:
    apply_network_config: false
disable_vmware_customization: false
preserve_hostname: true
vendor_data: {enabled: true, prefix: []}
syslog_fix_perms: ~
network:
  config: disabled
cloud_init_modules:
  - bootcmd
  - write_files
  - acme_inventory
cloud_config_modules:
  - vendor_tool
  - runcmd
cloud_final_modules:
  - legacy_agent
  - [scripts_user, always]
  - final_message
system_info:
  distro: amazon
  default_user:
    name: ec2-user
    lock_passwd: True
    gecos: EC2 Default User
    groups: [wheel, adm, systemd-journal]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
  paths:
    cloud_dir: /var/lib/cloud/
    templates_dir: /etc/cloud/templates/
  ssh_svcname: sshd
`

const loggingCfg = `_log:
 - &log_base |
   [loggers]
   keys=root,cloudinit
 - &log_syslog |
   [handler_cloudLogHandler]
   class=handlers.SysLogHandler
log_cfgs:
 - [ *log_base, *log_syslog ]
output: {all: '| tee -a /var/log/cloud-init-output.log'}
`

// TestSystemConfig: cloud-init's /etc/cloud/cloud.cfg and cloud.cfg.d
// under ec2init's own image config and the user data; what only
// cloud-init or other datasources read is accepted quietly.
func TestSystemConfig(t *testing.T) {
	tests := []struct {
		name     string
		userData string
		files    map[string]string // under the root
		want     map[string]int
		// wantState is the boot's state; wantProblem a substring of its
		// errors or degradations.
		wantState, wantProblem string
		// wantIgnored: the one info line names these.
		wantIgnored []string
		// wantFile: a file under the root holds this (a module's work);
		// wantNoFile: a file no module wrote.
		wantFile   [2]string
		wantNoFile string
	}{
		{
			name:  "cloud.cfg alone applies",
			files: map[string]string{config.CloudInitFile: runcmdTo("cloud")},
			want:  map[string]int{"cloud": 1}, wantState: state.StateDone,
		},
		{
			name: "cloud.cfg.d over cloud.cfg, in name order",
			files: map[string]string{
				config.CloudInitFile:              runcmdTo("cloud"),
				config.CloudInitDir + "/10-a.cfg": runcmdTo("a"),
				config.CloudInitDir + "/20-b.cfg": runcmdTo("b"),
				config.CloudInitDir + "/30-c.txt": runcmdTo("c"),
			},
			want: map[string]int{"cloud": 0, "a": 0, "b": 1, "c": 0}, wantState: state.StateDone,
		},
		{
			name: "ec2init's image config over /etc/cloud",
			files: map[string]string{
				config.CloudInitDir + "/50.cfg":      runcmdTo("cloud"),
				agent.ImageConfigDir + "/50-own.cfg": runcmdTo("own"),
			},
			want: map[string]int{"cloud": 0, "own": 1}, wantState: state.StateDone,
		},
		{
			name:     "user data over both",
			userData: "#cloud-config\n" + runcmdTo("user"),
			files: map[string]string{
				config.CloudInitFile:                 runcmdTo("cloud"),
				agent.ImageConfigDir + "/50-own.cfg": runcmdTo("own"),
			},
			want: map[string]int{"cloud": 0, "own": 0, "user": 1}, wantState: state.StateDone,
		},
		{
			name:     "a module list in /etc/cloud chooses the modules",
			userData: "#cloud-config\n" + runcmdTo("user"),
			files:    map[string]string{config.CloudInitDir + "/90-lists.cfg": "cloud_config_modules: [ntp]\n"},
			want:     map[string]int{"user": 0}, wantState: state.StateDone,
		},
		{
			name:     "an Amazon Linux cloud.cfg: internals and other clouds' keys quiet, one info line",
			userData: "#cloud-config\n" + runcmdTo("user"),
			files: map[string]string{
				config.CloudInitFile:                    amazonCloudCfg,
				config.CloudInitDir + "/05_logging.cfg": loggingCfg,
			},
			want: map[string]int{"user": 1}, wantState: state.StateDone,
			wantIgnored: []string{"datasource.Azure", "datasource.NoCloud", "disable_vmware_customization", "acme_inventory", "legacy_agent", "vendor_tool"},
		},
		{
			name:      "manage_etc_hosts in /etc/cloud reaches its module",
			files:     map[string]string{config.CloudInitDir + "/50-hosts.cfg": "manage_etc_hosts: localhost\n"},
			wantState: state.StateDone,
			wantFile:  [2]string{"/etc/hosts", "# Added by ec2init (manage_etc_hosts: localhost)"},
		},
		{
			name:       "preserve_hostname in /etc/cloud, manage_etc_hosts from the user data: both apply",
			userData:   "#cloud-config\nmanage_etc_hosts: localhost\n",
			files:      map[string]string{config.CloudInitFile: "preserve_hostname: true\nmanage_etc_hosts: false\n"},
			wantState:  state.StateDone,
			wantFile:   [2]string{"/etc/hosts", "manage_etc_hosts: localhost"},
			wantNoFile: "/etc/hostname",
		},
		{
			name: "a key ec2init does not support is named by file and line",
			files: map[string]string{
				config.CloudInitDir + "/50.cfg": runcmdTo("cloud") + "no_such_key: 1\n",
			},
			want: map[string]int{"cloud": 1}, wantState: state.StateDegraded,
			wantProblem: config.CloudInitDir + "/50.cfg:3:1: warning: no_such_key: not supported by ec2init",
		},
		{
			name: "a bad value is an error, the rest applies",
			files: map[string]string{
				config.CloudInitFile: runcmdTo("cloud") + "bootcmd: {not: a list}\n",
			},
			want: map[string]int{"cloud": 1}, wantState: state.StateError,
			wantProblem: config.CloudInitFile + ":3:10: error: bootcmd: expected list of",
		},
		{
			name: "a default user key ec2init does not take is named",
			files: map[string]string{
				config.CloudInitFile: "system_info:\n  default_user:\n    name: bob\n    doas: [permit nopass bob]\n",
			},
			wantState:   state.StateDegraded,
			wantProblem: config.CloudInitFile + ":4: system_info.default_user.doas: not supported",
		},
		{
			name:        "a file that does not parse is named",
			files:       map[string]string{config.CloudInitDir + "/50.cfg": "runcmd: [\n"},
			wantState:   state.StateError,
			wantProblem: config.CloudInitDir + "/50.cfg:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.userData)
			for p, body := range tt.files {
				full := filepath.Join(f.root, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st := f.boot(boot1)
			f.wantRuns("boot", tt.want)
			problems := strings.Join(append(append([]string{}, st.Errors...), st.Degraded...), "\n")
			if st.State != tt.wantState || !strings.Contains(problems, tt.wantProblem) {
				t.Errorf("state %s, want %s; problems:\n%s\nwant one with %q", st.State, tt.wantState, problems, tt.wantProblem)
			}
			if tt.wantFile[0] != "" {
				b, err := os.ReadFile(filepath.Join(f.root, tt.wantFile[0]))
				if err != nil || !strings.Contains(string(b), tt.wantFile[1]) {
					t.Errorf("%s: %q, %v; want %q in it", tt.wantFile[0], b, err, tt.wantFile[1])
				}
			}
			if tt.wantNoFile != "" {
				if _, err := os.Stat(filepath.Join(f.root, tt.wantNoFile)); err == nil {
					t.Errorf("%s written", tt.wantNoFile)
				}
			}
			var ignored []string
			for _, l := range strings.Split(f.log.String(), "\n") {
				if strings.Contains(l, "cloud-init system config: ignored") {
					ignored = append(ignored, l)
				}
			}
			switch {
			case len(tt.wantIgnored) == 0 && len(ignored) != 0:
				t.Errorf("info lines %q, want none", ignored)
			case len(tt.wantIgnored) > 0 && len(ignored) != 1:
				t.Errorf("%d info lines about ignored keys, want 1: %q", len(ignored), ignored)
			case len(tt.wantIgnored) > 0:
				for _, k := range tt.wantIgnored {
					if !strings.Contains(ignored[0], k) {
						t.Errorf("info line %q does not name %s", ignored[0], k)
					}
				}
			}
		})
	}
}

// TestLoadSystemConfig: what the boot takes from an Amazon Linux
// cloud.cfg, and what it sorts out.
func TestLoadSystemConfig(t *testing.T) {
	root := t.TempDir()
	for p, body := range map[string]string{config.CloudInitFile: amazonCloudCfg, config.CloudInitDir + "/05_logging.cfg": loggingCfg} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := sys.NewRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := agent.LoadSystemConfig(r, all.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sc.Checked {
		if len(c.Diagnostics) > 0 {
			t.Errorf("%s: %v", c.Source, c.Diagnostics)
		}
	}
	if got := strings.Join(sc.Internal, " "); got != "_log datasource datasource_list log_cfgs network output syslog_fix_perms system_info vendor_data" {
		t.Errorf("internal keys: %s", got)
	}
	if sc.Config.Has("system_info") || sc.Config.Has("output") || !sc.Config.Has("preserve_hostname") || !sc.Config.Has("cloud_final_modules") {
		t.Errorf("module-facing keys: %v", sc.Config.Keys())
	}
	if sc.Settings.IMDS.Deadline.Std().Seconds() != 10 || sc.Settings.DefaultUser.Name != "ec2-user" || len(sc.NotHonoured) != 0 {
		t.Errorf("settings %+v, not honoured %q", sc.Settings, sc.NotHonoured)
	}
}

// TestCloudInitScriptDirectories: /var/lib/cloud/scripts/per-* run in the
// same slots as ec2init's own directories, after them, each script under
// its own semaphore (a file of the same name in both runs twice).
func TestCloudInitScriptDirectories(t *testing.T) {
	f := newFixture(t, "")
	order := "#!/bin/sh\necho \"$0\" >> \"$EC2INIT_ROOT/out/order\"\n"
	for _, s := range []struct{ dir, name, body string }{
		{"etc/ec2init/scripts/per-boot", "10-same", counter("own-boot") + order},
		{agent.CloudInitScriptDirs + "/per-boot", "10-same", counter("cloud-boot") + order},
		{agent.CloudInitScriptDirs + "/per-instance", "10-inst", counter("cloud-instance")},
		{agent.CloudInitScriptDirs + "/per-once", "10-once", counter("cloud-once")},
	} {
		p := filepath.Join(f.root, s.dir, s.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s.body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st := f.boot(boot1)
	f.boot(boot2)
	f.wantRuns("two boots", map[string]int{"own-boot": 2, "cloud-boot": 2, "cloud-instance": 1, "cloud-once": 1})
	b, _ := os.ReadFile(filepath.Join(f.root, "out/order"))
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) < 2 ||
		!strings.Contains(lines[0], "etc/ec2init/scripts") || !strings.Contains(lines[1], "var/lib/cloud/scripts") {
		t.Errorf("order of the per-boot scripts: %q", lines)
	}
	var names []string
	for _, stg := range st.Stages {
		for _, m := range stg.Modules {
			names = append(names, m.Name)
		}
	}
	joined := strings.Join(names, " ")
	for _, want := range []string{"scripts_per_boot:10-same", "scripts_per_boot:cloud-init:10-same", "scripts_per_instance:cloud-init:10-inst", "scripts_per_once:cloud-init:10-once"} {
		if !strings.Contains(joined, want) {
			t.Errorf("status names %s, want %s", joined, want)
		}
	}
}
