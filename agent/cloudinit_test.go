package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
)

// TestInstanceDataFiles boots on the simulator and reads cloud-init's
// instance-data files as `cloud-init query` would: the sensitive one
// root's only, the public one with every sensitive value redacted.
func TestInstanceDataFiles(t *testing.T) {
	f := newFixture(t, "#cloud-config\nruncmd: [[true]]\n")
	cfg := filepath.Join(f.root, "etc/ec2init/cloud.cfg.d/50-image.cfg")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("#cloud-config\nntp: {servers: [secret-ntp.example]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ciCfg := filepath.Join(f.root, "etc/cloud/cloud.cfg")
	if err := os.MkdirAll(filepath.Dir(ciCfg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ciCfg, []byte("system_info:\n  default_user: {name: ec2-user}\n  distro: amazon\nntp: {enabled: false}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.boot(boot1)
	read := func(p string, mode os.FileMode) map[string]any {
		t.Helper()
		full := filepath.Join(f.root, p)
		fi, err := os.Stat(full)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
		b, _ := os.ReadFile(full)
		if !strings.HasSuffix(string(b), "}\n") || !strings.HasPrefix(string(b), "{\n \"") {
			t.Errorf("%s not in write_json's format: %.40q", p, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	sens := read("run/cloud-init/instance-data-sensitive.json", 0o600)
	pub := read("run/cloud-init/instance-data.json", 0o644)

	v1 := sens["v1"].(map[string]any)
	for k, want := range map[string]string{"cloud_name": "aws", "cloud-name": "aws", "platform": "ec2", "cloud_id": "aws",
		"instance_id": "i-0123456789abcdef0", "instance-id": "i-0123456789abcdef0", "subplatform": "metadata (" + f.url + ")"} {
		if v1[k] != want {
			t.Errorf("v1.%s = %v, want %q", k, v1[k], want)
		}
	}
	for _, k := range []string{"region", "availability_zone", "availability-zone", "local_hostname", "machine", "kernel_release",
		"variant", "python_version", "system_platform", "distro", "distro_release", "distro_version", "public_ssh_keys", "_beta_keys"} {
		if _, ok := v1[k]; !ok {
			t.Errorf("v1 has no %s", k)
		}
	}
	ds := sens["ds"].(map[string]any)
	md := ds["meta-data"].(map[string]any)
	if md["instance-id"] != "i-0123456789abcdef0" || ds["_doc"] != civiews.DSDoc {
		t.Errorf("ds: %v", ds)
	}
	// The tree as cloud-init materializes it: one key a string, JSON
	// leaves parsed, several lines a list, credentials never.
	if k, _ := md["public-keys"].(map[string]any); k == nil || len(k) != 1 {
		t.Errorf("public-keys %v", md["public-keys"])
	} else {
		for _, v := range k {
			if s, ok := v.(string); !ok || !strings.HasPrefix(s, "ssh-") {
				t.Errorf("public key %#v", v)
			}
		}
	}
	if info := md["iam"].(map[string]any)["info"].(map[string]any); info["Code"] != "Success" {
		t.Errorf("iam/info %v", info)
	}
	if sg, ok := md["security-groups"].([]any); !ok || len(sg) < 2 {
		t.Errorf("security-groups %#v", md["security-groups"])
	}
	for _, p := range []string{"run/cloud-init/instance-data.json", "run/cloud-init/instance-data-sensitive.json"} {
		b, _ := os.ReadFile(filepath.Join(f.root, p))
		if strings.Contains(string(b), "security-credentials") || strings.Contains(string(b), "SecretAccessKey") {
			t.Errorf("%s holds credentials", p)
		}
	}
	if _, ok := ds["user-data"]; ok {
		t.Error("user data in ds: cloud-init leaves it out")
	}
	// cloud-init's system config, ec2init's image config merged over it.
	merged := sens["merged_cfg"].(map[string]any)
	ntp, _ := merged["ntp"].(map[string]any)
	si, _ := merged["system_info"].(map[string]any)
	if ntp["enabled"] != false || ntp["servers"] == nil || si["distro"] != "amazon" {
		t.Errorf("merged_cfg: %v", merged)
	}
	wantSens := []any{"merged_cfg", "merged_system_cfg"}
	if got := sens["sensitive_keys"].([]any); len(got) != 2 || got[0] != wantSens[0] || got[1] != wantSens[1] {
		t.Errorf("sensitive_keys %v", got)
	}
	if pub["merged_cfg"] != civiews.RedactedValue || pub["merged_system_cfg"] != civiews.RedactedValue {
		t.Errorf("public merged_cfg %v", pub["merged_cfg"])
	}
	if _, ok := pub["features"]; ok {
		t.Error("features in the public file")
	}
	b, _ := os.ReadFile(filepath.Join(f.root, "run/cloud-init/instance-data.json"))
	if strings.Contains(string(b), "secret-ntp") {
		t.Error("public instance data holds a sensitive value")
	}
	if id, err := os.ReadFile(filepath.Join(f.root, "run/cloud-init/cloud-id")); err != nil || string(id) != "aws\n" {
		t.Errorf("cloud-id %q %v", id, err)
	}
	// The cloud-config the boot acted on: system config, image config and
	// the user data's, root's only.
	comb := read("run/cloud-init/combined-cloud-config.json", 0o600)
	if comb["runcmd"] == nil || comb["system_info"] == nil || comb["ntp"].(map[string]any)["servers"] == nil || comb["_doc"] != civiews.CombinedConfigDoc {
		t.Errorf("combined-cloud-config.json: %v", comb)
	}
}

// TestReadSysInfo: sys_info's distribution and variant as cloud-init
// reads them from os-release, and the image's glibc in platform.
func TestReadSysInfo(t *testing.T) {
	for _, tt := range []struct {
		osRelease string
		dist      [3]string
		variant   string
	}{
		{"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n", [3]string{"debian", "12", "bookworm"}, "debian"},
		{"NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\n", [3]string{"amzn", "2023", ""}, "linux"},
		{"ID=ubuntu\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nVERSION_ID=\"22.04\"\n", [3]string{"ubuntu", "22.04", "Jammy Jellyfish"}, "ubuntu"},
		{"ID=\"rhel\"\nVERSION_ID=\"9.4\"\nVERSION=\"9.4 (Plow)\"\n", [3]string{"redhat", "9.4", "Plow"}, "rhel"},
	} {
		dir := t.TempDir()
		for p, body := range map[string]string{"etc/os-release": tt.osRelease,
			"lib64/libc.so.6": "\x7fELF...GNU C Library (GNU libc) stable release version 2.34.\x00"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		root, err := sys.NewRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		si := agent.ReadSysInfo(root)
		if si.Dist != tt.dist || si.Variant != tt.variant || !strings.HasSuffix(si.Platform, "-with-glibc2.34") || si.System != "Linux" {
			t.Errorf("%q: %+v", tt.osRelease, si)
		}
	}
}

// TestJinjaVars: a template written for cloud-init renders from the
// instance data as cloud-init renders it.
func TestJinjaVars(t *testing.T) {
	in := &imds.Instance{InstanceID: "i-0abc", Region: "cn-north-1", AvailabilityZone: "cn-north-1a", LocalHostname: "ip-10-0-0-1.ec2.internal",
		PublicKeys:       []imds.PublicKey{{Name: "deploy", OpenSSHKey: "ssh-ed25519 AAAA deploy"}},
		IdentityDocument: &imds.IdentityDocument{AccountID: "123456789012", Region: "cn-north-1"}}
	vars := agent.JinjaVars(agent.InstanceDataInput{Instance: in, SystemConfig: map[string]any{"x": "from cloud.cfg"}})
	tmpl := "## template: jinja\n#!/bin/sh\n" +
		"{{ v1.cloud_id }} {{ v1['availability-zone'] }} {{ ds.meta_data.placement.availability_zone }} {{ ds['meta-data']['instance-id'] }} " +
		"{{ local_hostname }} {{ ds.dynamic.instance_identity.document.accountId }} {{ v1.public_ssh_keys[0] }} " +
		"{{ ds.meta_data.public_keys.deploy }} {{ merged_cfg.x }} {{ v1.subplatform }}\n"
	res, err := userdata.Parse([]byte(tmpl), userdata.Options{Vars: vars})
	if err != nil {
		t.Fatal(err)
	}
	want := "#!/bin/sh\naws-china cn-north-1a cn-north-1a i-0abc ip-10-0-0-1 123456789012 ssh-ed25519 AAAA deploy ssh-ed25519 AAAA deploy from cloud.cfg metadata (http://169.254.169.254)\n"
	if got := string(res.Parts[0].Body); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
