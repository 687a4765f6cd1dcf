package wireguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/pkgmgr"
	"github.com/ec2init/ec2init/modules/modtest"
)

const conf = "[Interface]\nPrivateKey = SECRETKEY\nListenPort = 51820\n"

func TestWireguard(t *testing.T) {
	tests := []struct {
		name      string
		cfg       string
		want      map[string]string // file: content
		wantErr   []string
		wantProbe string // what the probes recorded
	}{
		{"two interfaces, probes run", `wireguard:
  interfaces:
    - {name: wg0, config_path: /etc/wireguard/wg0.conf, content: "` + strings.ReplaceAll(conf, "\n", `\n`) + `"}
    - {name: wg1, config_path: /etc/wireguard/wg1.conf, content: "[Interface]\n"}
  readinessprobe:
    - 'echo one >> "$EC2INIT_ROOT/probes"'
    - 'echo two >> "$EC2INIT_ROOT/probes"'
`, map[string]string{"/etc/wireguard/wg0.conf": conf, "/etc/wireguard/wg1.conf": "[Interface]\n"}, nil, "one\ntwo\n"},
		{"a bad interface is its own item; probes not run", `wireguard:
  interfaces:
    - {name: wg0, config_path: /etc/wireguard/wg0.conf}
    - {name: wg1, config_path: /etc/wireguard/wg1.conf, content: "[Interface]\n"}
    - {name: "bad name!", config_path: /etc/wireguard/x.conf, content: "` + strings.ReplaceAll(conf, "\n", `\n`) + `"}
  readinessprobe: ['echo ran >> "$EC2INIT_ROOT/probes"']
`, map[string]string{"/etc/wireguard/wg0.conf": "<absent>", "/etc/wireguard/wg1.conf": "[Interface]\n", "/etc/wireguard/x.conf": "<absent>"},
			[]string{"wireguard.interfaces[0]: line 3: missing content", "wireguard.interfaces[2]: line 5: name: not an interface name"}, "<absent>"},
		{"failing probes, all run", `wireguard:
  interfaces: [{name: wg0, config_path: /etc/wireguard/wg0.conf, content: x}]
  readinessprobe: ['echo nope; exit 3', 'echo second >> "$EC2INIT_ROOT/probes"', 'false']
`, map[string]string{"/etc/wireguard/wg0.conf": "x"}, []string{"readinessprobe[0]: exit status 3: nope", "readinessprobe[2]: exit status 1"}, "second\n"},
		{"null", "wireguard: ~\n", nil, nil, "<absent>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			modtest.Put(t, e, "/usr/bin/wg", "") // installed: nothing to install
			err := Wireguard{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want %q", err, w)
				}
			}
			if err != nil {
				var items modules.ItemErrors
				if !errors.As(err, &items) || len(items) != len(tt.wantErr) {
					t.Errorf("err = %#v, want %d items", err, len(tt.wantErr))
				}
				if strings.Contains(err.Error(), "SECRETKEY") {
					t.Errorf("error quotes the configuration: %v", err)
				}
			}
			for p, want := range tt.want {
				if got := modtest.Get(t, e, p); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
				if want == "<absent>" {
					continue
				}
				fi, err := e.Root.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != ConfigMode {
					t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
				}
			}
			if got := modtest.Get(t, e, "/probes"); got != tt.wantProbe {
				t.Errorf("probes recorded %q, want %q", got, tt.wantProbe)
			}
		})
	}
}

// TestInstallsTools: without wg, wireguard-tools is installed before
// anything is written (here the package manager refuses a plain root).
func TestInstallsTools(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/etc/os-release", "ID=debian\n")
	modtest.Put(t, e, "/usr/bin/apt-get", "")
	cfg := "wireguard: {interfaces: [{name: wg0, config_path: /etc/wireguard/wg0.conf, content: x}]}\n"
	err := Wireguard{}.Run(context.Background(), e, modtest.Config(t, cfg))
	if !errors.Is(err, pkgmgr.ErrNeedsChroot) || !strings.Contains(err.Error(), "install wireguard-tools") {
		t.Fatalf("err = %v, want the package manager's", err)
	}
	if got := modtest.Get(t, e, "/etc/wireguard/wg0.conf"); got != "<absent>" {
		t.Errorf("written before wireguard-tools was installed: %q", got)
	}
}

// TestBringUp checks the systemctl calls argv by argv: this container
// runs no systemd, so the unit cannot really start (TestRealConfig runs
// wg-quick itself on the written file instead).
func TestBringUp(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "ran")
	tests := []struct {
		name, systemctl, want, wantErr string
	}{
		{"enable then restart", "#!/bin/sh\necho \"systemctl $*\" >> " + rec + "\n",
			"systemctl enable wg-quick@wg0\nsystemctl restart wg-quick@wg0\n", ""},
		{"restart fails", "#!/bin/sh\necho \"systemctl $*\" >> " + rec + "\n[ \"$1\" = restart ] && { echo 'Job failed'; exit 1; }\nexit 0\n",
			"systemctl enable wg-quick@wg0\nsystemctl restart wg-quick@wg0\n", "systemctl restart wg-quick@wg0: exit status 1: Job failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(rec)
			bin := testkit.FakeBin(t, map[string]string{"systemctl": tt.systemctl})
			r := &sys.Runner{Env: map[string]string{"PATH": bin + ":/usr/bin:/bin"}}
			err := bringUp(context.Background(), r, "wg0")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got, _ := os.ReadFile(rec); string(got) != tt.want {
				t.Errorf("ran %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRealConfig writes a configuration with the module and brings it up
// with the real wg-quick (so the real wg setconf parses it) in a network
// namespace of its own, then asks wg what it configured.
func TestRealConfig(t *testing.T) {
	testkit.RequireRoot(t, "a network namespace and a WireGuard interface need root")
	for _, tool := range []string{"ip", "wg", "wg-quick"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages iproute2, wireguard-tools)", tool)
		}
	}
	ns := fmt.Sprintf("ec2init-wg-%d", os.Getpid())
	run := func(stdin string, argv ...string) (string, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return strings.TrimSpace(out.String()), err
	}
	if out, err := run("", "ip", "netns", "add", ns); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { run("", "ip", "netns", "del", ns) })
	if _, err := run("", "ip", "-n", ns, "link", "add", "wgprobe", "type", "wireguard"); err != nil {
		if _, err := exec.LookPath("wireguard-go"); err != nil {
			t.Skip("the kernel has no WireGuard and wireguard-go (its userspace fallback) is not installed")
		}
		t.Log("the kernel has no WireGuard: wg-quick uses wireguard-go")
	} else {
		run("", "ip", "-n", ns, "link", "del", "wgprobe")
	}
	key, err := run("", "wg", "genkey")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := run(key, "wg", "pubkey")
	if err != nil {
		t.Fatal(err)
	}
	peerKey, _ := run("", "wg", "genkey")
	peer, err := run(peerKey, "wg", "pubkey")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ec2wg%d", os.Getpid()%100000)
	content := fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = 51999\nAddress = 10.99.0.1/24\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.99.0.2/32\n", key, peer)
	cfg := fmt.Sprintf("wireguard:\n  interfaces:\n    - name: %s\n      config_path: /etc/wireguard/%s.conf\n      content: |\n", name, name)
	for _, l := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
		cfg += "        " + l + "\n"
	}
	cfg += "  readinessprobe: ['test \"$(stat -c %a \"$EC2INIT_ROOT/etc/wireguard/" + name + ".conf\")\" = 600']\n"

	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/usr/bin/wg", "")
	if err := (Wireguard{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
		t.Fatal(err)
	}
	file, err := e.Root.Path("/etc/wireguard/" + name + ".conf")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run("", "ip", "netns", "exec", ns, "wg-quick", "up", file); err != nil {
		t.Fatalf("wg-quick up on the written file: %v\n%s", err, out)
	}
	t.Cleanup(func() { run("", "ip", "netns", "exec", ns, "wg-quick", "down", file) })
	for what, want := range map[string]string{"public-key": pub, "listen-port": "51999", "peers": peer} {
		got, err := run("", "ip", "netns", "exec", ns, "wg", "show", name, what)
		if err != nil || got != want {
			t.Errorf("wg show %s: %q (%v), want %q", what, got, err, want)
		}
	}
	if got, _ := run("", "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", name); !strings.Contains(got, "10.99.0.1/24") {
		t.Errorf("address not set: %q", got)
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"wireguard: {interfaces: [{name: wg0, config_path: /etc/wireguard/wg0.conf}]}\n":                 `u.yaml:1:26: error: wireguard.interfaces[0]: missing required key "content"`,
		"wireguard: {interfaces: [{config_path: /x.conf, content: c}]}\n":                                `u.yaml:1:26: error: wireguard.interfaces[0]: missing required key "name"`,
		"wireguard: {readinessprobe: [true]}\n":                                                          `missing required key "interfaces"`,
		"wireguard: {interfaces: []}\n":                                                                  "u.yaml:1:25: error: wireguard.interfaces: needs at least one interface",
		"wireguard: {interfaces: [{name: wg0, config_path: wg0.conf, content: c}]}\n":                    "u.yaml:1:51: error: wireguard.interfaces[0].config_path: must be an absolute path",
		"wireguard:\n  interfaces:\n    - {name: 'a b', config_path: /x, content: c}\n":                  "u.yaml:3:14: error: wireguard.interfaces[0].name: not an interface name",
		"wireguard:\n  interfaces: [{name: w, config_path: /w, content: c}]\n  readinessprobe: [a, a]\n": "u.yaml:3:23: error: wireguard.readinessprobe[1]: probe listed twice",
		"wireguard: {interfaces: [{name: w, config_path: /w, content: c, extra: 1}]}\n":                  `warning: wireguard.interfaces[0].extra: unknown key "extra"`,
	} {
		if got := modtest.Diagnostics(t, doc, Wireguard{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
	if got := modtest.Diagnostics(t, "wireguard:\n  interfaces: [{name: wg0, config_path: /etc/wireguard/wg0.conf, content: c}]\n  readinessprobe: [ping -c1 10.0.0.1]\n", Wireguard{}); got != "" {
		t.Errorf("a good config has findings: %s", got)
	}
}
