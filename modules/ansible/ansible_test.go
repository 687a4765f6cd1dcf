package ansible

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/bootstrap/bootstraptest"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestSchema(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"valid", `ansible:
  install_method: distro
  package_name: ansible-core
  pull:
    - url: https://example.com/repo.git
      playbook_names: [site.yml]
      accept_host_key: true
`, ""},
		{"runtime requires install_method and package_name", "ansible:\n  run_user: ubuntu\n",
			"u.yaml:2:3: error: ansible: missing required key \"install_method\"\nu.yaml:2:3: error: ansible: missing required key \"package_name\""},
		{"wrong types", "ansible:\n  install_method: apt\n  package_name: ansible\n  galaxy: {actions: [ansible-galaxy]}\n",
			"u.yaml:2:19: error: ansible.install_method: expected one of distro, pip, got \"apt\"\nu.yaml:4:22: error: ansible.galaxy.actions[0]: expected list of string, got string"},
		{"pull without url or playbooks", "ansible:\n  install_method: pip\n  package_name: ansible\n  pull:\n    - checkout: main\n",
			"u.yaml:5:7: error: ansible.pull[0]: missing required key \"url\"\nu.yaml:5:7: error: ansible.pull[0]: missing required key \"playbook_names\""},
		{"both playbook keys", "ansible:\n  install_method: pip\n  package_name: ansible\n  pull:\n    url: x\n    playbook_name: a.yml\n    playbook_names: [b.yml]\n",
			"u.yaml:6:20: error: ansible.pull.playbook_name: playbook_name and playbook_names are mutually exclusive; give playbook_names"},
		{"empty controller", "ansible:\n  install_method: pip\n  package_name: ansible\n  setup_controller: {}\n",
			"u.yaml:4:21: error: ansible.setup_controller: give repositories or run_ansible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := modtest.Diagnostics(t, tt.doc, Ansible{}); got != tt.want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestPullReal runs the real ansible-pull (Debian's ansible-core) on a
// local git repository holding a playbook that writes a file.
func TestPullReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ansible-pull (seconds)")
	}
	for _, tool := range []string{"ansible-pull", "ansible", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install ansible-core git)", tool)
		}
	}
	repo := t.TempDir()
	playbook := `- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - copy:
        dest: "{{ out }}"
        content: "pulled {{ lookup('env', 'ANSIBLE_CONFIG') }}\n"
`
	if err := os.WriteFile(filepath.Join(repo, "site.yml"), []byte(playbook), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."},
		{"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "playbook"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, argv...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", argv, err, out)
		}
	}
	work := t.TempDir()
	out := filepath.Join(work, "out.txt")
	e, console := modtest.Env(t)
	e.Runner.Env = map[string]string{"HOME": work} // ~/.ansible in the test's directory
	cfg := modtest.Config(t, `ansible:
  install_method: distro
  package_name: ansible-core
  ansible_config: /nonexistent/ansible.cfg
  pull:
    - url: file://`+repo+`
      checkout: main
      directory: `+filepath.Join(work, "checkout")+`
      extra_vars: out=`+out+`
      playbook_names: [site.yml]
`)
	if err := (Ansible{}).Run(context.Background(), e, cfg); err != nil {
		t.Fatalf("%v\n%s", err, console)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("playbook did not run: %v\n%s", err, console)
	}
	if got := string(b); got != "pulled /nonexistent/ansible.cfg\n" {
		t.Errorf("playbook wrote %q", got)
	}
	if !strings.Contains(console.String(), "PLAY RECAP") {
		t.Errorf("ansible-pull's output not in the output log:\n%s", console)
	}
}

// fakeAnsible makes fake ansible tools that record their argv,
// ansible-pull answering --version with version.
func fakeAnsible(t *testing.T, e *modules.Env, version string) bootstraptest.Fakes {
	t.Helper()
	return bootstraptest.NewFakes(t, e, map[string]string{
		"ansible":          "",
		"ansible-galaxy":   "",
		"ansible-playbook": "echo \"cwd $(pwd)\" >> \"$log\"\n",
		"git":              "",
		"ansible-pull":     "[ \"$1\" = --version ] && echo 'ansible-pull [core " + version + "]'\nexit 0\n",
		// runuser records, then runs the command after "--" as it is
		"runuser": "shift 3\nexec \"$@\"\n",
	})
}

// TestArgv checks the command lines cloud-init's runtime gives (no real
// tool needed: the real run is TestPullReal; these cover ansible versions
// and users Debian does not have).
func TestArgv(t *testing.T) {
	tests := []struct {
		name, version, cfg, want, wantErr string
	}{
		{"flags in order, several playbooks in one run", "2.14.18", `ansible:
  install_method: distro
  package_name: ansible
  pull:
    - url: https://example.com/r.git
      accept_host_key: true
      clean: false
      diff: yes
      sleep: "5"
      timeout: 30
      playbook_names: [a.yml, b.yml]
`, "ansible-pull --version\nansible-pull --url=https://example.com/r.git --accept-host-key --diff --sleep=5 --timeout=30 a.yml b.yml\n", ""},
		{"old ansible: one run per playbook; the deprecated mapping", "2.9.6", `ansible:
  install_method: distro
  package_name: ansible
  pull:
    url: https://example.com/r.git
    playbook_name: site.yml
    vault_password_file: /root/vault
`, "ansible-pull --version\nansible-pull --url=https://example.com/r.git --vault-password-file=/root/vault site.yml\n", ""},
		{"diff needs 2.7", "2.6.0", `ansible:
  install_method: distro
  package_name: ansible
  pull: [{url: x, diff: true, playbook_names: [a.yml]}]
`, "ansible-pull --version\n", "pull[0]: diff: ansible 2.6.0 has no --diff"},
		{"run_user, galaxy, then pull, then the controller", "2.14.0", `ansible:
  install_method: distro
  package_name: ansible
  run_user: ubuntu
  galaxy:
    actions:
      - [ansible-galaxy, install, community.general]
  pull: [{url: x, playbook_names: [a.yml]}]
  setup_controller:
    repositories:
      - {path: /home/ubuntu/repo, source: https://example.com/c.git}
    run_ansible:
      - playbook_dir: /tmp
        playbook_name: ctl.yml
        forks: 5
        check: true
`, "runuser -u ubuntu -- ansible-galaxy install community.general\nansible-galaxy install community.general\n" +
			"runuser -u ubuntu -- ansible-pull --version\nansible-pull --version\n" +
			"runuser -u ubuntu -- ansible-pull --url=x a.yml\nansible-pull --url=x a.yml\n" +
			"runuser -u ubuntu -- git clone https://example.com/c.git /home/ubuntu/repo\ngit clone https://example.com/c.git /home/ubuntu/repo\n" +
			"runuser -u ubuntu -- ansible-playbook ctl.yml --forks=5 --check\nansible-playbook ctl.yml --forks=5 --check\ncwd /tmp\n", ""},
		{"galaxy fails: the pull is not run", "2.14.0", `ansible:
  install_method: distro
  package_name: ansible
  galaxy: {actions: [[false]]}
  pull: [{url: x, playbook_names: [a.yml]}]
`, "", "galaxy.actions[0]: ansible galaxy: exit status 1"},
		{"runtime checks", "2.14.0", "ansible:\n  package_name: ansible\n", "", "missing required key install_method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			fakes := fakeAnsible(t, e, tt.version)
			err := (Ansible{}).Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := fakes.Argv(t); got != tt.want {
				t.Errorf("commands:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestPip checks a pip install's command lines (argv only: it would
// install from PyPI).
func TestPip(t *testing.T) {
	e, _ := modtest.Env(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "installed")
	// python3 answers as an externally managed python whose pip lists
	// ansible once "pip install ansible-core" ran.
	python := "#!/bin/sh\necho \"python3 $*\" >> " + filepath.Join(dir, "py.log") + `
case "$*" in
  *getuserbase*) echo /home/ubuntu/.local ;;
  *EXTERNALLY-MANAGED*) echo True ;;
  "-m pip list"*) [ -e ` + state + ` ] && echo "ansible-core 2.17.0" ;;
  *"install --break-system-packages --user ansible-core") touch ` + state + ` ;;
esac
exit 0
`
	fakes := fakeAnsible(t, e, "2.17.0")
	testkit.FakeTool(t, fakes.Bin, "python3", python)
	cfg := modtest.Config(t, "ansible: {install_method: pip, package_name: ansible-core, run_user: ubuntu}\n")
	if err := (Ansible{}).Run(context.Background(), e, cfg); err != nil {
		t.Fatal(err)
	}
	want := `python3 -c import site; print(site.getuserbase())
python3 -c import pip
python3 -m pip list --user
python3 -c import os, sysconfig; print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))
python3 -m pip install --break-system-packages --user --upgrade pip
python3 -m pip install --break-system-packages --user ansible-core
python3 -m pip list --user
`
	if got, _ := os.ReadFile(filepath.Join(dir, "py.log")); string(got) != want {
		t.Errorf("python3 runs:\n%s\nwant:\n%s", got, want)
	}
	if got := fakes.Argv(t); !strings.Contains(got, "runuser -u ubuntu -- python3 -m pip install --break-system-packages --user ansible-core") {
		t.Errorf("pip install not run as the user:\n%s", got)
	}
}
