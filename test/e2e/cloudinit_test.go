package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

// afterFinalUnit is a unit written for cloud-init: ordered after its final
// stage, wanted by cloud-init.target. It records what it finds when it
// starts: ec2init's final stage must be done by then (READY sent), so
// `ec2init status` says done without waiting. Then `cloud-init status
// --wait`: /usr/bin/cloud-init is the package's link to ec2init, which
// answers cloud-init's command line by that name (before that name was
// dispatched, the same link still reached `ec2init status --wait`).
const afterFinalUnit = `[Unit]
Description=e2e: a unit ordered after cloud-init's final stage
After=cloud-final.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c '{ echo "final-state=$(systemctl show -p ActiveState --value ec2init-final.service)"; /usr/bin/ec2init status >/dev/null 2>&1; echo "status-at-start=$?"; cloud-init status --wait >/dev/null 2>&1; echo "cloud-init-status-wait=$?"; echo "cloud-final-id=$(systemctl show -p Id --value cloud-final.service)"; echo "cloud-init-target=$(systemctl show -p Id --value cloud-init.target)"; } > /var/tmp/e2e-after-final.tmp 2>&1; mv /var/tmp/e2e-after-final.tmp /var/tmp/e2e-after-final'
[Install]
WantedBy=cloud-init.target
`

// TestSystemdCloudInitNames: an image made for cloud-init, with ec2init
// installed instead, over two boots (and a third, disabled the cloud-init
// way): cloud-init's unit names order units after ec2init's work,
// `cloud-init status --wait` answers, cloud-init-per runs once, the
// /etc/cloud configuration's default user is made, and cloud-init's script
// directory runs.
func TestSystemdCloudInitNames(t *testing.T) {
	base := baseRootfs(t)
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte("#cloud-config\nbootcmd:\n  - [cloud-init-per, once, e2e-once, sh, -c, 'echo run >> /var/tmp/per-once']\n"))
	root := install(t, base, url)

	// The package linked cloud-init's names, cloud-init being absent.
	for link, target := range map[string]string{
		"usr/lib/systemd/system/cloud-init-local.service":   "ec2init-local.service",
		"usr/lib/systemd/system/cloud-init.service":         "ec2init.service",
		"usr/lib/systemd/system/cloud-init-network.service": "ec2init.service",
		"usr/lib/systemd/system/cloud-config.service":       "ec2init-config.service",
		"usr/lib/systemd/system/cloud-final.service":        "ec2init-final.service",
		"usr/lib/systemd/system/cloud-init.target":          "ec2init.target",
		"usr/lib/systemd/system/cloud-config.target":        "ec2init-network.target",
		"var/log/cloud-init-output.log":                     "ec2init-output.log",
		"var/log/cloud-init.log":                            "ec2init.log",
		"usr/bin/cloud-init":                                "/usr/libexec/ec2init/cloud-init",
		"usr/bin/cloud-init-per":                            "/usr/libexec/ec2init/cloud-init-per",
	} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != target {
			t.Errorf("/%s -> %q (%v), want -> %s", link, got, err, target)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "var/lib/cloud/scripts/per-boot")); err != nil || !fi.IsDir() {
		t.Errorf("/var/lib/cloud/scripts/per-boot: %v", err)
	}

	// cloud-init's configuration, as an image made for it carries it.
	write(t, filepath.Join(root, "etc/cloud/cloud.cfg.d/50-e2e.cfg"), `system_info:
  default_user:
    name: cloudy
    gecos: Cloudy Default User
    groups: [sudo]
datasource:
  NoCloud:
    seedfrom: http://192.0.2.1/
`)
	write(t, filepath.Join(root, "var/lib/cloud/scripts/per-boot/10-e2e"), "#!/bin/sh\necho run >> /var/tmp/cloud-per-boot\n")
	if err := os.Chmod(filepath.Join(root, "var/lib/cloud/scripts/per-boot/10-e2e"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc/systemd/system/e2e-after-final.service"), afterFinalUnit)
	run(t, "systemctl", "--root="+root, "enable", "e2e-after-final.service")
	// e2e-done powers the container off once this unit has recorded.
	write(t, filepath.Join(root, "var/tmp/e2e-wait-for"), "/var/tmp/e2e-after-final")

	count := func(p string) int {
		b, _ := os.ReadFile(filepath.Join(root, p))
		return strings.Count(string(b), "run\n")
	}
	for i := 1; i <= 2; i++ {
		os.Remove(filepath.Join(root, "var/tmp/e2e-after-final"))
		status, console := boot(t, root)
		if !strings.Contains(status, "status: done") || !strings.Contains(status, "exit=0") {
			t.Fatalf("boot %d: status:\n%s\nconsole:\n%s", i, status, tail(console, 40))
		}
		after, err := os.ReadFile(filepath.Join(root, "var/tmp/e2e-after-final"))
		if err != nil {
			t.Fatalf("boot %d: the unit After=cloud-final.service did not run: %v\nconsole:\n%s", i, err, tail(console, 40))
		}
		for _, want := range []string{
			"final-state=active\n",       // ec2init-final was READY when it started
			"status-at-start=0\n",        // and the boot's work done
			"cloud-init-status-wait=0\n", // cloud-init status --wait: done
			"cloud-final-id=ec2init-final.service\n",
			"cloud-init-target=ec2init.target\n",
		} {
			if !strings.Contains(string(after), want) {
				t.Errorf("boot %d: the unit After=cloud-final.service recorded:\n%s\nwant %q", i, after, want)
			}
		}
		if strings.Contains(console, "ordering cycle") {
			t.Errorf("boot %d: ordering cycle:\n%s", i, tail(console, 60))
		}
		if n := count("var/tmp/cloud-per-boot"); n != i {
			t.Errorf("boot %d: /var/lib/cloud/scripts/per-boot ran %d times in all", i, n)
		}
	}
	if n := count("var/tmp/per-once"); n != 1 {
		t.Errorf("cloud-init-per once ran its command %d times over two boots, want 1", n)
	}
	// /etc/cloud's system_info.default_user is ec2init's default user: it
	// got the instance's key pair.
	if b, err := os.ReadFile(filepath.Join(root, "home/cloudy/.ssh/authorized_keys")); err != nil || !strings.Contains(string(b), " my-key") {
		t.Errorf("default user from /etc/cloud: authorized_keys %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); !strings.Contains(string(b), "cloudy:x:") || !strings.Contains(string(b), "Cloudy Default User") {
		t.Errorf("default user from /etc/cloud not in /etc/passwd:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "home/admin/.ssh/authorized_keys")); len(b) > 0 {
		t.Errorf("the distribution's default user got the key too: %q", b)
	}
	// The other datasource's settings: one info line in the agent's log.
	if b, _ := os.ReadFile(filepath.Join(root, "var/log/ec2init.log")); !strings.Contains(string(b), "datasource.NoCloud") {
		t.Errorf("no info line about datasource.NoCloud in ec2init.log")
	}

	// Disabled the cloud-init way: ec2init's units do not run.
	write(t, filepath.Join(root, "etc/cloud/cloud-init.disabled"), "")
	run(t, "systemctl", "--root="+root, "disable", "e2e-after-final.service")
	os.Remove(filepath.Join(root, "var/tmp/e2e-wait-for"))
	status, console := boot(t, root)
	if !strings.Contains(status, "status: disabled (/etc/cloud/cloud-init.disabled)") || !strings.Contains(status, "final-unit=inactive") {
		t.Errorf("disabled by /etc/cloud/cloud-init.disabled: status:\n%s\nconsole:\n%s", status, tail(console, 30))
	}
	if n := count("var/tmp/cloud-per-boot"); n != 2 {
		t.Errorf("disabled boot ran the per-boot script (%d runs in all)", n)
	}
}

// TestPackageBesideCloudInit: where cloud-init is installed, the package
// links none of its names (its units, logs and command stay its own), and
// removing the package leaves them.
func TestPackageBesideCloudInit(t *testing.T) {
	base := baseRootfs(t)
	deb, _ := buildPackages(t)
	dir, err := os.MkdirTemp("/var/tmp", "ec2init-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	root := filepath.Join(dir, "rootfs")
	run(t, "cp", "-a", base, root)
	// cloud-init's own files, as its package leaves them.
	write(t, filepath.Join(root, "usr/lib/systemd/system/cloud-final.service"), "[Unit]\nDescription=Cloud-init: Final Stage\n")
	write(t, filepath.Join(root, "usr/lib/systemd/system/cloud-init.target"), "[Unit]\nDescription=Cloud-init target\n")
	write(t, filepath.Join(root, "usr/bin/cloud-init"), "#!/usr/bin/python3\n")
	write(t, filepath.Join(root, "var/log/cloud-init.log"), "cloud-init's\n")
	run(t, "cp", deb, filepath.Join(root, "tmp", "ec2init.deb"))
	run(t, "chroot", root, "dpkg", "-i", "/tmp/ec2init.deb")
	for _, p := range []string{"usr/lib/systemd/system/cloud-init-local.service", "usr/lib/systemd/system/cloud-config.service",
		"var/log/cloud-init-output.log", "var/lib/cloud/scripts"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("/%s made beside cloud-init", p)
		}
	}
	run(t, "chroot", root, "dpkg", "-r", "ec2init")
	for p, want := range map[string]string{
		"usr/lib/systemd/system/cloud-final.service": "Cloud-init: Final Stage",
		"usr/bin/cloud-init":                         "python3",
		"var/log/cloud-init.log":                     "cloud-init's",
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("cloud-init's /%s after installing and removing ec2init: %q, %v", p, b, err)
		}
	}
}
