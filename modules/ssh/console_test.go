package ssh

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/modules/modtest"
)

var stamp = time.Date(2026, 12, 7, 3, 4, 5, 0, time.UTC)

// TestKeysToConsole: real host keys made by ssh-keygen are printed in
// cloud-init's blocks, fingerprints as `ssh-keygen -l` prints them.
func TestKeysToConsole(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skipf("ssh-keygen not installed (Debian package openssh-client): %v", err)
	}
	e, out := modtest.Env(t)
	for _, typ := range []string{"ed25519", "ecdsa"} {
		_, pub := realKey(t, typ)
		modtest.Put(t, e, "/etc/ssh/ssh_host_"+typ+"_key.pub", pub)
	}
	if err := (KeysToConsole{Now: func() time.Time { return stamp }}).Run(context.Background(), e, modtest.Config(t, "")); err != nil {
		t.Fatal(err)
	}
	// What ssh-keygen -l says of each, in the file order.
	var fps []string
	for _, typ := range []string{"ecdsa", "ed25519"} {
		p, _ := e.Root.Path("/etc/ssh/ssh_host_" + typ + "_key.pub")
		b, err := exec.Command("ssh-keygen", "-l", "-f", p).Output()
		if err != nil {
			t.Fatal(err)
		}
		fps = append(fps, "<14>Dec  7 03:04:05 cloud-init: "+strings.TrimSpace(string(b)))
	}
	pre := "<14>Dec  7 03:04:05 cloud-init: "
	ecdsa, _ := e.Root.ReadFile("/etc/ssh/ssh_host_ecdsa_key.pub")
	ed, _ := e.Root.ReadFile("/etc/ssh/ssh_host_ed25519_key.pub")
	want := pre + strings.Repeat("#", 61) + "\n" + pre + "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n" +
		strings.Join(fps, "\n") + "\n" + pre + "-----END SSH HOST KEY FINGERPRINTS-----\n" + pre + strings.Repeat("#", 61) + "\n" +
		"-----BEGIN SSH HOST KEY KEYS-----\n" + string(ecdsa) + string(ed) + "-----END SSH HOST KEY KEYS-----\n"
	if out.String() != want {
		t.Errorf("console:\n%s\nwant:\n%s", out, want)
	}
}

func TestKeysToConsoleBlacklists(t *testing.T) {
	tests := []struct {
		name, doc string
		want      *regexp.Regexp
	}{
		{"off", "ssh: {emit_keys_to_console: false}", regexp.MustCompile(`^$`)},
		{"no fingerprint of ed25519", "ssh_fp_console_blacklist: [ssh-ed25519]",
			regexp.MustCompile(`(?s)FINGERPRINTS-----\n[^\n]* \(RSA\)\n[^\n]*END SSH HOST KEY FINGERPRINTS.*KEYS-----\nssh-ed25519 .*\nssh-rsa .*\n-----END`)},
		{"no keys at all", "ssh_key_console_blacklist: [ssh-ed25519, ssh-rsa]",
			regexp.MustCompile(`(?s)FINGERPRINTS-----\n.*\(ED25519\)\n.*\(RSA\)\n.*END SSH HOST KEY FINGERPRINTS-----\n[^\n]*#+\n$`)},
		{"nothing", "ssh_key_console_blacklist: [ssh-ed25519, ssh-rsa]\nssh_fp_console_blacklist: [ssh-ed25519, ssh-rsa]", regexp.MustCompile(`^$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, out := modtest.Env(t)
			modtest.Put(t, e, "/etc/ssh/ssh_host_ed25519_key.pub", testEd+"\n")
			modtest.Put(t, e, "/etc/ssh/ssh_host_rsa_key.pub", testRSA+"\n")
			if err := (KeysToConsole{}).Run(context.Background(), e, modtest.Config(t, tt.doc)); err != nil {
				t.Fatal(err)
			}
			if !tt.want.MatchString(out.String()) {
				t.Errorf("console:\n%s", out)
			}
		})
	}
}

// testEd is a real ed25519 public key.
const testEd = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiFNq/AYmuyXEmbp76GoYJ6uJxtpEzBivy4C4jB4W+9 ed@test"

// testRSA is a real 1024-bit RSA public key (fingerprints need one).
const testRSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDB0gHLAO8Vx3gUSBzV+EiTnqEMuhoiNnZM1Yv/qbXTZ+vy0J7VV9U4GjbQlhw9UYNWzJw80bpmTuKW1/WwnLlVV5Zw9rDvRbdZ4E7Q/CYuXfJXlpmO2/NmWAYMQtuKoL+kZvC8ZSu5IowLZ6+wJtkmLqXAJ0WPa6TpAiSxtDAVMQ== rsa@test"

// TestAuthkeyFingerprints: the table cloud-init prints for each user, and
// the line for a user without keys, whose empty file is made as cloud-init
// makes it.
func TestAuthkeyFingerprints(t *testing.T) {
	e, out := modtest.Env(t)
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	modtest.Put(t, e, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"+
		"ec2-user:x:"+uid+":"+gid+"::/home/ec2-user:/bin/bash\nbob:x:"+uid+":"+gid+"::/home/bob:/bin/bash\nsvc:x:"+uid+":"+gid+"::/nonexistent:/bin/false\n")
	modtest.Put(t, e, "/etc/group", "root:x:0:\n")
	modtest.Put(t, e, "/home/ec2-user/.ssh/authorized_keys", "# mine\n"+testEd+"\n"+`no-pty,command="echo a b" `+testRSA+"\n")
	if err := e.Root.MkdirAll("/home/bob", 0o755); err != nil {
		t.Fatal(err)
	}
	doc := "users: [default, bob, {name: svc, system: true}]\n"
	if err := (AuthkeyFingerprints{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	fpA := hexFingerprint(strings.Fields(testEd)[1], "sha256")
	fpH := hexFingerprint(strings.Fields(testRSA)[1], "sha256")
	if len(fpA) != 95 {
		t.Fatalf("fingerprint %q", fpA)
	}
	got := out.String()
	lines := strings.Split(got, "\n")
	if len(lines) < 8 {
		t.Fatalf("console:\n%s", got)
	}
	// The rule and the title are as wide; the header is centred.
	if !strings.HasPrefix(lines[0], "ci-info: +++") || !strings.Contains(lines[0], "Authorized keys from /home/ec2-user/.ssh/authorized_keys for user ec2-user") ||
		len(lines[0]) != len(lines[1]) {
		t.Errorf("title %q / rule %q", lines[0], lines[1])
	}
	row := regexp.MustCompile(`^ci-info: \|\s+ssh-ed25519\s+\|\s+` + regexp.QuoteMeta(fpA) + `\s+\|\s+-\s+\|\s+ed@test\s+\|$`)
	if !row.MatchString(lines[4]) {
		t.Errorf("row %q", lines[4])
	}
	row2 := regexp.MustCompile(`^ci-info: \|\s+ssh-rsa\s+\|\s+` + regexp.QuoteMeta(fpH) + `\s+\| no-pty,command="echo a b" \|\s+rsa@test\s+\|$`)
	if !row2.MatchString(lines[5]) {
		t.Errorf("row %q", lines[5])
	}
	if lines[6] != lines[1] || lines[3] != lines[1] {
		t.Errorf("rules %q %q %q", lines[1], lines[3], lines[6])
	}
	if lines[7] != "ci-info: no authorized SSH keys fingerprints found for user bob." {
		t.Errorf("bob: %q", lines[7])
	}
	if strings.Contains(got, "svc") {
		t.Error("a system user's keys printed")
	}
	if fi, err := e.Root.Stat("/home/bob/.ssh/authorized_keys"); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
		t.Errorf("bob's authorized_keys: %v %v", fi, err)
	}

	out.Reset()
	if err := (AuthkeyFingerprints{}).Run(context.Background(), e, modtest.Config(t, doc+"no_ssh_fingerprints: true\n")); err != nil || out.Len() != 0 {
		t.Errorf("no_ssh_fingerprints: %v %q", err, out)
	}
}

func TestPythonCentring(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"ab", 5, "  ab "}, // Python: 'ab'.center(5)
		{"abc", 6, " abc  "},
		{"a", 4, " a  "},
		{"ab", 6, "  ab  "},
	}
	for _, tt := range tests {
		if got := pyCenter(tt.s, tt.width); got != tt.want {
			t.Errorf("pyCenter(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
	if got := padCentre("ab", '+', 5); got != "+ab++" {
		t.Errorf("padCentre = %q", got)
	}
}
