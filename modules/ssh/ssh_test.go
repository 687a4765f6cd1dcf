package ssh

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

const (
	keyA    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAkeyOfInstanceAAAAAAAAAAAAAAAAAAAAAAAA key-a"
	keyB    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBkeyOfInstanceBBBBBBBBBBBBBBBBBBBBBBBB key-b"
	keyHand = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQChandAddedKeyHHHHHHHHHHHHHHHH hand@laptop"
	keyCfg  = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYcloudConfigCCCC cfg"
)

// disk is one instance's disk: a root that the instances below boot from in
// turn, as an AMI made of A boots as B.
type disk struct {
	t       *testing.T
	env     *modules.Env
	console *bytes.Buffer
}

func newDisk(t *testing.T) *disk {
	t.Helper()
	e, out := modtest.Env(t)
	// The test's own ids, so chown works without privileges.
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	files := map[string]string{
		"/etc/passwd": "root:x:" + uid + ":" + gid + ":root:/root:/bin/bash\n" +
			"ec2-user:x:" + uid + ":" + gid + ":EC2 Default User:/home/ec2-user:/bin/bash\n",
		"/etc/group":           "root:x:" + gid + ":\n",
		"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\n",
	}
	for p, c := range files {
		if err := e.Root.WriteFile(p, []byte(c), 0o644, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"/root", "/home/ec2-user"} {
		if err := e.Root.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &disk{t: t, env: e, console: out}
}

// boot runs the module as instance id with key pair key.
func (d *disk) boot(m SSH, id string, newInstance bool, key string, doc string) error {
	d.t.Helper()
	d.console.Reset()
	d.env.NewInstance = newInstance
	d.env.Instance = &imds.Instance{InstanceID: id}
	if key != "" {
		d.env.Instance.PublicKeys = []imds.PublicKey{{Index: 0, Name: "kp-" + id, OpenSSHKey: key + "\n"}}
	}
	return m.Run(context.Background(), d.env, modtest.Config(d.t, doc))
}

func (d *disk) read(p string) string {
	d.t.Helper()
	b, err := d.env.Root.ReadFile(p)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(b)
}

func (d *disk) hostKeys() string {
	var b strings.Builder
	for _, t := range defaultKeyTypes {
		if data, err := d.env.Root.ReadFile("/etc/ssh/ssh_host_" + t + "_key.pub"); err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

const (
	userKeys = "/home/ec2-user/.ssh/authorized_keys"
	rootKeys = "/root/.ssh/authorized_keys"
)

// TestLostKey is the seed's story: an AMI made from instance A (key pair A)
// launched as instance B with key pair B must let B's key in, not A's, keep
// keys added by hand, and have new host keys.
func TestLostKey(t *testing.T) {
	_, keygenErr := exec.LookPath("ssh-keygen")
	d := newDisk(t)
	doc := "ssh_authorized_keys: ['" + keyCfg + "']\n"

	if err := d.boot(SSH{}, "i-aaaa", true, keyA, doc); err != nil && keygenErr == nil {
		t.Fatal(err)
	}
	if got := d.read(userKeys); got != keyA+"\n"+keyCfg+"\n" {
		t.Fatalf("instance A: authorized_keys = %q", got)
	}
	hostA := d.hostKeys()
	if keygenErr == nil {
		if strings.Count(hostA, "\n") != 3 {
			t.Fatalf("instance A host keys: %q", hostA)
		}
		// ssh-keygen's report of each new key, as cloud-init prints it.
		if c := d.console.String(); strings.Count(c, "The key fingerprint is:") != 3 || strings.Contains(c, keygenTempPrefix) {
			t.Errorf("console:\n%s", c)
		}
	}
	// The operator adds a key by hand on A, then makes an AMI.
	if err := d.env.Root.AppendFile(userKeys, []byte(keyHand+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := d.boot(SSH{}, "i-bbbb", true, keyB, doc); err != nil && keygenErr == nil {
		t.Fatal(err)
	}
	got := d.read(userKeys)
	if got != keyCfg+"\n"+keyHand+"\n"+keyB+"\n" {
		t.Errorf("instance B: authorized_keys = %q; want B's key, the cloud-config's and the hand-added one, not A's", got)
	}
	rk := d.read(rootKeys)
	if strings.Contains(rk, "key-a") || !strings.Contains(rk, `Please login as the user \"ec2-user\" rather than the user \"root\".`) ||
		!strings.Contains(rk, "exit 142\" "+keyB+"\n") {
		t.Errorf("instance B: root's authorized_keys = %q", rk)
	}
	var st keysState
	if err := json.Unmarshal([]byte(d.read(KeysStateFile)), &st); err != nil {
		t.Fatal(err)
	}
	if st.InstanceID != "i-bbbb" || len(st.Keys["ec2-user"]) != 1 || !strings.HasPrefix(keyB, st.Keys["ec2-user"][0]) {
		t.Errorf("state %+v", st)
	}
	if fi, _ := d.env.Root.Stat(KeysStateFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode())
	}

	if keygenErr != nil {
		t.Skipf("host keys not checked: ssh-keygen not installed (Debian package openssh-client): %v", keygenErr)
	}
	hostB := d.hostKeys()
	if hostB == hostA || strings.Count(hostB, "\n") != 3 {
		t.Errorf("host keys not renewed for the new instance")
	}
	for _, t1 := range defaultKeyTypes {
		fi, err := d.env.Root.Stat("/etc/ssh/ssh_host_" + t1 + "_key")
		if err != nil || fi.Mode().Perm()&0o077&^0o040 != 0 {
			t.Errorf("private %s key: %v %v", t1, fi.Mode(), err)
		}
	}

	// A reboot of B (or a re-run of the module on B): host keys stay.
	if err := d.boot(SSH{}, "i-bbbb", false, keyB, doc); err != nil {
		t.Fatal(err)
	}
	if d.hostKeys() != hostB {
		t.Error("host keys changed on a reboot")
	}
	if d.read(userKeys) != got {
		t.Errorf("reboot changed authorized_keys: %q", d.read(userKeys))
	}
}

func TestKeepPreviousInstanceKeys(t *testing.T) {
	d := newDisk(t)
	noHostKeys := "ssh_genkeytypes: []\n"
	m := SSH{PreviousInstanceKeys: KeepPreviousKeys}
	if err := d.boot(m, "i-aaaa", true, keyA, noHostKeys); err != nil {
		t.Fatal(err)
	}
	if err := d.boot(m, "i-bbbb", true, keyB, noHostKeys); err != nil {
		t.Fatal(err)
	}
	if got := d.read(userKeys); got != keyA+"\n"+keyB+"\n" {
		t.Errorf("authorized_keys = %q, want A's and B's", got)
	}
	// Switching to remove later drops A's, recorded all along.
	if err := d.boot(SSH{}, "i-cccc", true, keyB, noHostKeys); err != nil {
		t.Fatal(err)
	}
	if got := d.read(userKeys); got != keyB+"\n" {
		t.Errorf("authorized_keys = %q, want B's alone", got)
	}
}

func TestNoKeyPair(t *testing.T) {
	d := newDisk(t)
	noHostKeys := "ssh_genkeytypes: []\n"
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, noHostKeys); err != nil {
		t.Fatal(err)
	}
	// Launched without a key pair: A's key must still go.
	if err := d.boot(SSH{}, "i-bbbb", true, "", noHostKeys); err != nil {
		t.Fatal(err)
	}
	if got := d.read(userKeys); got != "" {
		t.Errorf("authorized_keys = %q, want empty", got)
	}
}

func TestRootAndDefaultUser(t *testing.T) {
	tests := []struct {
		name, doc        string
		wantUser         bool
		wantRoot         string // a substring of root's line
		wantRootNotHaves string
	}{
		{name: "disable_root default", doc: "", wantUser: true, wantRoot: `no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command="echo 'Please login as the user \"ec2-user\" rather than the user \"root\".';echo;sleep 10;exit 142" ssh-ed25519`},
		{name: "disable_root false", doc: "disable_root: false", wantUser: true, wantRoot: "\n" + keyA + "\n"},
		{name: "own options", doc: "disable_root_opts: 'no-pty,command=\"echo $USER\"'", wantUser: true, wantRoot: `no-pty,command="echo ec2-user" ssh-ed25519`},
		{name: "no default user", doc: "users: [bob]", wantRoot: `\"NONE\"`},
		{name: "IMDS keys refused", doc: "allow_public_ssh_keys: false\nssh_authorized_keys: ['" + keyCfg + "']", wantUser: true, wantRoot: "cfg", wantRootNotHaves: "key-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDisk(t)
			if err := d.boot(SSH{}, "i-aaaa", true, keyA, "ssh_genkeytypes: []\n"+tt.doc+"\n"); err != nil {
				t.Fatal(err)
			}
			_, err := d.env.Root.ReadFile(userKeys)
			if (err == nil) != tt.wantUser {
				t.Errorf("default user's keys written = %v, want %v", err == nil, tt.wantUser)
			}
			rk := "\n" + d.read(rootKeys)
			if !strings.Contains(rk, tt.wantRoot) || tt.wantRootNotHaves != "" && strings.Contains(rk, tt.wantRootNotHaves) {
				t.Errorf("root's keys %q, want %q", rk, tt.wantRoot)
			}
		})
	}
}

func TestBadKeysNamedNotShown(t *testing.T) {
	d := newDisk(t)
	err := d.boot(SSH{}, "i-aaaa", true, keyA, "ssh_genkeytypes: []\nssh_authorized_keys: ['"+keyCfg+"', 'PRIVATE-LOOKING-SECRET']\n")
	if err == nil || !strings.Contains(err.Error(), "test.yaml:2: ssh_authorized_keys: items 1 are not public keys") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error shows the item: %v", err)
	}
	if got := d.read(userKeys); got != keyA+"\n"+keyCfg+"\n" {
		t.Errorf("authorized_keys = %q", got)
	}
}

func TestPwauthAndQuietKeygen(t *testing.T) {
	d := newDisk(t)
	if err := d.boot(SSH{}, "i-aaaa", false, keyA, "ssh_pwauth: true\nssh_quiet_keygen: true\n"); err != nil {
		t.Fatal(err)
	}
	if got := d.read(DropIn); got != "PasswordAuthentication yes\n" {
		t.Errorf("drop-in %q", got)
	}
	if d.console.Len() != 0 {
		t.Errorf("console: %q", d.console.String())
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, `ssh_pwauth: sometimes
ssh_genkeytypes: [rsa, dss]
disable_root: 1
ssh_keys: {dsa_private: x, rsa_public: 3}
ssh_publish_hostkeys: {enabled: false, blacklist: [rsa]}
`, SSH{})
	for _, want := range []string{
		"u.yaml:1:13: error: ssh_pwauth: expected boolean or one of unchanged",
		"u.yaml:2:24: error: ssh_genkeytypes[1]: expected one of rsa, ecdsa, ed25519, dsa",
		"u.yaml:3:15: error: disable_root: expected boolean",
		`u.yaml:4:12: warning: ssh_keys.dsa_private: unknown key "dsa_private"`,
		"u.yaml:4:40: error: ssh_keys.rsa_public: expected string",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics\n%s\nlack %q", got, want)
		}
	}
	if ok := modtest.Diagnostics(t, "ssh_pwauth: unchanged\nssh_deletekeys: no\nssh_genkeytypes: [ed25519]\n", SSH{}); ok != "" {
		t.Errorf("valid config: %s", ok)
	}
	if !(SSH{}).Wanted(config.Merge()) {
		t.Error("ssh must run on every new instance")
	}
}

// TestConfiguredDefaultUser: default_user.name in ec2init's config is who
// the instance's key pair goes to, and who root's refusal names.
func TestConfiguredDefaultUser(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"system config", "ssh_genkeytypes: []\n"},
		{"the user key renames the default user", "ssh_genkeytypes: []\nuser: ops\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { testConfiguredDefaultUser(t, tc.doc, tc.name == "system config") })
	}
}

func testConfiguredDefaultUser(t *testing.T, doc string, viaSystem bool) {
	d := newDisk(t)
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	passwd := "root:x:" + uid + ":" + gid + ":root:/root:/bin/bash\n" +
		"ops:x:" + uid + ":" + gid + ":Operators:/home/ops:/bin/bash\n"
	if err := d.env.Root.WriteFile("/etc/passwd", []byte(passwd), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.env.Root.MkdirAll("/home/ops", 0o755); err != nil {
		t.Fatal(err)
	}
	if viaSystem {
		d.env.System.DefaultUser.Name = "ops"
	}
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, doc); err != nil {
		t.Fatal(err)
	}
	if got := d.read("/home/ops/.ssh/authorized_keys"); got != keyA+"\n" {
		t.Errorf("ops' authorized_keys = %q", got)
	}
	if _, err := d.env.Root.ReadFile(userKeys); err == nil {
		t.Errorf("the distribution's default user got keys too")
	}
	if rk := d.read(rootKeys); !strings.Contains(rk, `login as the user \"ops\"`) {
		t.Errorf("root's keys %q", rk)
	}
}

// TestUnknownKeyType: a type the image's ssh-keygen does not make is
// skipped, as cloud-init skips it, the others made. Debian 12's real
// ssh-keygen still makes dsa keys: a fake stands for a newer OpenSSH
// without them.
func TestUnknownKeyType(t *testing.T) {
	d := newDisk(t)
	bin := testkit.FakeBin(t, map[string]string{"ssh-keygen": `#!/bin/sh
case "$*" in *"-t dsa"*) echo "unknown key type dsa" >&2; exit 255;; esac
while [ "$1" != -f ]; do shift; done
echo priv > "$2"; echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiFNq/AYmuyXEmbp76GoYJ6uJxtpEzBivy4C4jB4W+9 x" > "$2.pub"
`})
	d.env.Runner.Env = map[string]string{"PATH": bin + ":" + sys.DefaultPath}
	if err := d.boot(SSH{}, "i-aaaa", true, keyA, "ssh_genkeytypes: [dsa, ed25519]\nssh_quiet_keygen: true\n"); err != nil {
		t.Fatal(err)
	}
	if got := d.read("/etc/ssh/ssh_host_ed25519_key"); got != "priv\n" {
		t.Errorf("ed25519 key %q", got)
	}
}
