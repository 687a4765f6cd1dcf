package agent_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules/all"
)

// migrateImage is an image root with ec2init's units (as its package
// installs them) and cloud-init's configuration; withCloudInit adds
// cloud-init's own unit files, enabled, as its package leaves them.
func migrateImage(t *testing.T, withCloudInit bool) string {
	t.Helper()
	root := t.TempDir()
	put := func(p, body string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	units, err := filepath.Glob("../packaging/systemd/ec2init*")
	if err != nil || len(units) == 0 {
		t.Fatalf("ec2init's units: %v", err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		put("/usr/lib/systemd/system/"+filepath.Base(u), string(b))
	}
	put(config.CloudInitFile, amazonCloudCfg+"runcmd: [echo hi]\nno_such_key: 1\n")
	put(config.CloudInitDir+"/05_logging.cfg", loggingCfg)
	if withCloudInit {
		for _, a := range agent.CloudInitUnitAliases {
			put("/usr/lib/systemd/system/"+a.Name, "[Unit]\nDescription=cloud-init's "+a.Name+"\n[Service]\nExecStart=/usr/bin/cloud-init\n[Install]\nWantedBy=cloud-init.target\n")
		}
		put("/var/lib/cloud/instance/obj.pkl", "")
	}
	return root
}

// tree lists every path under root, with symlink targets.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			rel += " -> " + target
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func actions(rep *agent.MigrateReport) []string {
	var out []string
	for _, a := range rep.Actions {
		s := a.What + " " + a.Target
		if a.Detail != "" && a.What == "link" {
			s += " -> " + a.Detail
		}
		out = append(out, s)
	}
	return out
}

func verdict(rep *agent.MigrateReport, key string) (agent.KeyVerdict, bool) {
	for _, k := range rep.Keys {
		if k.Key == key {
			return k, true
		}
	}
	return agent.KeyVerdict{}, false
}

// TestMigrateReport: key by key, what ec2init honours of cloud-init's
// configuration; nothing changes without Apply.
func TestMigrateReport(t *testing.T) {
	root := migrateImage(t, true)
	before := tree(t, root)
	rep, err := agent.Migrate(context.Background(), agent.MigrateOptions{Root: root, Registry: all.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	if after := tree(t, root); !slices.Equal(before, after) {
		t.Errorf("the report changed the image:\nbefore %q\nafter  %q", before, after)
	}
	tests := []struct {
		key      string
		honoured bool
		why      string
	}{
		{"runcmd", true, "module runcmd"},
		{"preserve_hostname", true, "module"},
		{"cloud_final_modules", true, "chooses the modules"},
		{"cloud_final_modules: legacy_agent", false, "not an ec2init module"},
		{"system_info.default_user.name", true, "default user"},
		{"system_info.default_user.groups", true, "default user"},
		{"system_info.paths", false, "distribution"},
		{"datasource.Ec2.timeout", true, "metadata client"},
		{"datasource.Ec2.apply_full_imds_network_config", true, "accepted"},
		{"datasource.NoCloud", false, "another datasource"},
		{"disable_vmware_customization", false, "another datasource"},
		{"datasource_list", false, "cloud-init's own"},
		{"output", false, "cloud-init-output.log"},
		{"no_such_key", false, "not supported by ec2init"},
	}
	for _, tt := range tests {
		v, ok := verdict(rep, tt.key)
		if !ok || v.Honoured != tt.honoured || !strings.Contains(v.Why, tt.why) || !strings.HasPrefix(v.Source, "/etc/cloud/cloud.cfg") {
			t.Errorf("%s: %+v (found %v), want honoured=%v, why with %q", tt.key, v, ok, tt.honoured, tt.why)
		}
	}
	if v, _ := verdict(rep, "runcmd"); v.Source != fmt.Sprintf("%s:%d", config.CloudInitFile, strings.Count(amazonCloudCfg, "\n")+1) {
		t.Errorf("runcmd's source %s", v.Source)
	}
	got := actions(rep)
	for _, want := range []string{"mask cloud-final.service", "mask cloud-init.target", "enable ec2init-final.service", "enable ec2init.target"} {
		if !slices.Contains(got, want) {
			t.Errorf("actions %q lack %q", got, want)
		}
	}
	for _, a := range got {
		if strings.HasPrefix(a, "link") {
			t.Errorf("%s while cloud-init is installed", a)
		}
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{"cloud-init's package is installed", "/var/lib/cloud/instance"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// TestMigrateApply: with cloud-init installed, its units masked and
// ec2init's enabled (real systemctl --root); once its package is gone,
// cloud-init's names linked to ec2init's. A second run has nothing to do.
func TestMigrateApply(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		t.Skip("needs systemctl (package systemd) to mask and enable units offline")
	}
	ctx := context.Background()
	root := migrateImage(t, true)
	rep, err := agent.Migrate(ctx, agent.MigrateOptions{Root: root, Registry: all.Registry(), Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rep.Actions {
		if !a.Done || a.Err != "" {
			t.Errorf("%s %s: %s", a.What, a.Target, a.Err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/cloud-final.service")); target != "/dev/null" {
		t.Errorf("cloud-final.service not masked: -> %q", target)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/ec2init.target.wants/ec2init-final.service")); err != nil {
		t.Errorf("ec2init-final.service not enabled: %v", err)
	}

	// The cloud-init package removed: its unit files go, its masks stay
	// unless removed by hand, so make it a clean removal.
	for _, a := range agent.CloudInitUnitAliases {
		os.Remove(filepath.Join(root, "usr/lib/systemd/system", a.Name))
		os.Remove(filepath.Join(root, "etc/systemd/system", a.Name))
	}
	rep, err = agent.Migrate(ctx, agent.MigrateOptions{Root: root, Registry: all.Registry(), Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{}
	for _, a := range agent.CloudInitUnitAliases {
		want = append(want, "link /usr/lib/systemd/system/"+a.Name+" -> "+a.Unit)
	}
	want = append(want, "link /var/log/cloud-init-output.log -> ec2init-output.log", "link /var/log/cloud-init.log -> ec2init.log",
		"mkdir /var/lib/cloud/scripts/per-boot", "mkdir /var/lib/cloud/scripts/per-instance", "mkdir /var/lib/cloud/scripts/per-once")
	if got := actions(rep); !slices.Equal(got, want) {
		t.Errorf("actions after cloud-init's removal:\n%q\nwant\n%q", got, want)
	}
	for _, a := range rep.Actions {
		if !a.Done {
			t.Errorf("%s %s: %s", a.What, a.Target, a.Err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(root, "usr/lib/systemd/system/cloud-final.service")); target != "ec2init-final.service" {
		t.Errorf("cloud-final.service -> %q", target)
	}
	rep, err = agent.Migrate(ctx, agent.MigrateOptions{Root: root, Registry: all.Registry(), Apply: true})
	if err != nil || len(rep.Actions) != 0 {
		t.Errorf("a second run: %q, %v", actions(rep), err)
	}
}
