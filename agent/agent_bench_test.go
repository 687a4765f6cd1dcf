package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules/all"
)

// benchKey is an ed25519 public key line, as users paste them.
const benchKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1bYq3o8mJ1c3lzkU0mGqYx3o0y7cKq3cXh3wQeJ5Z"

// realisticCloudConfig is the kind of cloud-config people send (3 KiB):
// users with keys and sudo, files, commands, packages.
func realisticCloudConfig() string {
	var b strings.Builder
	b.WriteString("#cloud-config\n# web tier, rendered by the launch template\n")
	b.WriteString("users:\n  - default\n")
	for _, u := range []string{"deploy", "alice", "bob"} {
		fmt.Fprintf(&b, "  - name: %s\n    gecos: %s of the web tier\n    groups: [adm, wheel]\n    shell: /bin/bash\n"+
			"    sudo: ['ALL=(ALL) NOPASSWD:ALL']\n    lock_passwd: true\n    ssh_authorized_keys:\n      - %s %s@laptop\n      - %s %s@ci\n",
			u, u, benchKey, u, benchKey, u)
	}
	b.WriteString("ssh_authorized_keys:\n  - " + benchKey + " ops@bastion\nssh_pwauth: false\ndisable_root: true\n")
	b.WriteString("write_files:\n")
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "  - path: /etc/app/conf.d/%02d-service.conf\n    owner: root:root\n    permissions: '0640'\n"+
			"    content: |\n      [service]\n      name = web-%d\n      listen = 0.0.0.0:%d\n      workers = 4\n", i, i, 8080+i)
	}
	b.WriteString("  - path: /etc/app/token\n    encoding: b64\n    content: c2VjcmV0LXRva2VuCg==\n    permissions: '0600'\n    defer: true\n")
	b.WriteString("packages:\n  - nginx\n  - jq\n  - [htop, 3.2.2]\npackage_update: true\n")
	b.WriteString("runcmd:\n  - [systemctl, enable, --now, nginx]\n  - echo \"ready $(hostname)\" > /var/tmp/ready\n" +
		"  - [sh, -c, 'curl -fsS http://localhost:8080/health || true']\n")
	b.WriteString("bootcmd:\n  - [sysctl, -w, net.core.somaxconn=1024]\n")
	b.WriteString("final_message: \"web tier up after $UPTIME seconds\"\n")
	return b.String()
}

// BenchmarkValidateCloudConfig is the cost of reading one cloud-config
// part at boot: YAML parse, then every key checked against its module's
// schema (what `ec2init schema` and the boot both run).
func BenchmarkValidateCloudConfig(b *testing.B) {
	doc := []byte(realisticCloudConfig())
	reg := all.Registry()
	// The input must be valid, or the benchmark measures error paths.
	checked, err := agent.ValidateInput("bench.yaml", doc, reg)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range checked {
		if config.HasErrors(c.Diagnostics) {
			b.Fatalf("benchmark config has errors: %v", c.Diagnostics)
		}
	}
	b.Run(fmt.Sprintf("parse-%dB", len(doc)), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := config.ParseDoc("bench.yaml", doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("parse+validate-%dB", len(doc)), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := agent.ValidateInput("bench.yaml", doc, reg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBoot is a whole first boot, every stage, in a fresh root
// against the in-process simulator: the agent's own overhead. "empty" has
// no user data; "script+config" has a no-op script and a small
// cloud-config (one write_files, one runcmd), whose two processes (the
// script and the command) are part of its cost. The roots are on the
// test's temporary directory, so the durable writes' fsyncs cost what
// that disk makes them cost; the "-tmpfs" variants put the root in
// memory (/dev/shm), leaving the agent's CPU time and the processes.
// "reboot" boots one root again and again (a new boot id each time, /run
// emptied as a reboot empties it) after its first boot: the per-boot cost
// of a known instance.
func BenchmarkBoot(b *testing.B) {
	type bootCase struct{ name, userData string }
	cases := []bootCase{
		{"empty", ""},
		{"script+config", costUserData()},
	}
	cases = append(cases, bootCase{"reboot", cases[1].userData})
	if _, err := os.Stat("/dev/shm"); err == nil {
		for _, c := range cases[:3] {
			cases = append(cases, bootCase{c.name + "-tmpfs", c.userData})
		}
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			sim, url := imdssim.Start(b, imdssim.Options{})
			sim.SetUserData(nil) // the default tree has a script
			if c.userData != "" {
				sim.SetUserData([]byte(c.userData))
			}
			client, err := imds.New(imds.Config{Endpoint: url})
			if err != nil {
				b.Fatal(err)
			}
			parent := b.TempDir()
			if strings.HasSuffix(c.name, "-tmpfs") {
				if parent, err = os.MkdirTemp("/dev/shm", "ec2init-bench-"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(parent) })
			}
			reboot := strings.HasPrefix(c.name, "reboot")
			var rebootRoot string
			if reboot {
				if rebootRoot, err = os.MkdirTemp(parent, "root"); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			boot := func() {
				i++
				root := rebootRoot
				if reboot {
					if err := os.RemoveAll(filepath.Join(root, "run")); err != nil {
						b.Fatal(err)
					}
				} else if root, err = os.MkdirTemp(parent, "root"); err != nil {
					b.Fatal(err)
				}
				st, err := agent.Boot(context.Background(), agent.Options{
					Root: root, IMDS: client, BootID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
					IdentifyDeadline: 10 * time.Second, Registry: all.Registry(),
				})
				if err != nil || st.State != state.StateDone {
					b.Fatalf("boot %d: %s %v %q %q", i, st.State, err, st.Errors, st.Degraded)
				}
			}
			if reboot {
				boot() // the first boot, not measured
			}
			b.ReportAllocs()
			for b.Loop() {
				boot()
			}
		})
	}
}
