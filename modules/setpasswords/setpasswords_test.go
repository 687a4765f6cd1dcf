package setpasswords

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// image is a root with accounts for the real chpasswd and passwd.
func image(t *testing.T) (*modules.Env, *strings.Builder, *observer.ObservedLogs) {
	t.Helper()
	testkit.RequireRoot(t, "chpasswd -R and passwd -R chroot into the test's root")
	for _, tool := range []string{"chpasswd", "passwd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package passwd): %v", tool, err)
		}
	}
	e, out := modtest.Env(t)
	modtest.Put(t, e, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000:Debian:/home/admin:/bin/bash\n"+
		"bob:x:1001:1001::/home/bob:/bin/bash\ncarol:x:1002:1002::/home/carol:/bin/bash\ndave:x:1003:1003::/home/dave:/bin/bash\n")
	modtest.Put(t, e, "/etc/group", "root:x:0:\nadmin:x:1000:\nbob:x:1001:\ncarol:x:1002:\ndave:x:1003:\n")
	modtest.Put(t, e, "/etc/shadow", "root:*:19000:0:99999:7:::\nadmin:!:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n"+
		"carol:!:19000:0:99999:7:::\ndave:!:19000:0:99999:7:::\n")
	modtest.Put(t, e, "/etc/os-release", "ID=debian\n")
	modtest.Put(t, e, "/etc/login.defs", "ENCRYPT_METHOD SHA512\n")
	core, logs := observer.New(zap.DebugLevel)
	e.Log = zap.New(core)
	out.Reset() // the console is a strings.Builder the tests read
	var console strings.Builder
	e.Console = &console
	return e, &console, logs
}

// shadow returns user's password field and last-change field.
func shadow(t *testing.T, e *modules.Env, user string) (hash, lastChange string) {
	t.Helper()
	for _, line := range strings.Split(modtest.Get(t, e, "/etc/shadow"), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[0] == user {
			return f[1], f[2]
		}
	}
	t.Fatalf("%s not in shadow", user)
	return "", ""
}

// verify checks that hash is pw's crypt, with openssl.
func verify(t *testing.T, hash, pw string) {
	t.Helper()
	m := regexp.MustCompile(`^\$6\$([^$]+)\$`).FindStringSubmatch(hash)
	if m == nil {
		t.Fatalf("hash %q is not SHA-512 crypt", hash)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Logf("openssl not installed: hash not verified")
		return
	}
	cmd := exec.Command("openssl", "passwd", "-6", "-salt", m[1], "-stdin")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != hash {
		t.Errorf("shadow hash is not the password's")
	}
}

const givenHash = "$6$rounds=4096$saltsalt$3xmw9ge1tW7Y0uSCmRlRx1lm0gDGBH3bW9fNLWBnF6Zi4DzHkvhi6gc7dFPeUeV9mmr9kT13O3GKBtdzDP5.L/"

// TestSetPasswords runs the real chpasswd and passwd on a root: text,
// hash and RANDOM passwords land in /etc/shadow, expired; the random one
// is on the console only; no password shows in the log or the error.
func TestSetPasswords(t *testing.T) {
	e, console, logs := image(t)
	doc := `chpasswd:
  users:
    - {name: bob, password: "Text-Secret-1", type: text}
    - {name: carol, password: "` + givenHash + `"}
    - {name: dave, type: RANDOM}
`
	if err := (SetPasswords{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	bob, bobChange := shadow(t, e, "bob")
	verify(t, bob, "Text-Secret-1")
	if carol, _ := shadow(t, e, "carol"); carol != givenHash {
		t.Errorf("carol's hash %q", carol)
	}
	// The random password: on the console in cloud-init's words, and in
	// shadow.
	m := regexp.MustCompile(`^Set the following 'random' passwords\n\ndave:(.{20})\n$`).FindStringSubmatch(console.String())
	if m == nil {
		t.Fatalf("console %q", console.String())
	}
	dave, _ := shadow(t, e, "dave")
	verify(t, dave, m[1])
	// Expired (cloud-init's default): last change 0, hashes included.
	for _, u := range []string{"bob", "carol", "dave"} {
		if _, last := shadow(t, e, u); last != "0" {
			t.Errorf("%s not expired: last change %q", u, last)
		}
	}
	_ = bobChange
	// chpasswd refuses a batch with an unknown user (as with cloud-init):
	// the error names the user, not the password.
	err := (SetPasswords{}).Run(context.Background(), e, modtest.Config(t, "chpasswd: {users: [{name: nosuchuser, password: Other-Secret-2, type: text}]}\n"))
	if err == nil || !strings.Contains(err.Error(), "chpasswd for nosuchuser: chpasswd exited 1") {
		t.Fatalf("err = %v, want the unknown user named", err)
	}
	// Nothing secret outside the console and shadow.
	var seen strings.Builder
	seen.WriteString(err.Error())
	for _, entry := range logs.All() {
		seen.WriteString(entry.Message)
		for k, v := range entry.ContextMap() {
			seen.WriteString(" " + k + "=")
			seen.WriteString(strings.TrimSpace(strings.ReplaceAll(anyString(v), "\n", " ")))
		}
	}
	for _, secret := range []string{"Text-Secret-1", "Other-Secret-2", givenHash, m[1]} {
		if strings.Contains(seen.String(), secret) {
			t.Errorf("a password shows in the log or error:\n%s", seen.String())
		}
	}
}

func anyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []string:
		return strings.Join(x, ",")
	case []any:
		var out []string
		for _, i := range x {
			out = append(out, anyString(i))
		}
		return strings.Join(out, ",")
	case error:
		return x.Error()
	}
	return ""
}

// TestLegacyListAndDefaultPassword: chpasswd.list in both forms, R and
// RANDOM, hashes told from text by cloud-init's pattern; expire: false;
// password: for the default user.
func TestLegacyListAndDefaultPassword(t *testing.T) {
	tests := []struct {
		name, doc string
		check     func(t *testing.T, e *modules.Env, console string)
	}{
		{"list as a string", "chpasswd:\n  expire: false\n  list: |\n    bob:List-Text-1\n    carol:" + givenHash + "\n    dave:R\n",
			func(t *testing.T, e *modules.Env, console string) {
				bob, last := shadow(t, e, "bob")
				verify(t, bob, "List-Text-1")
				if last == "0" {
					t.Error("expire: false, yet expired")
				}
				if carol, _ := shadow(t, e, "carol"); carol != givenHash {
					t.Errorf("carol %q", carol)
				}
				if !strings.Contains(console, "\ndave:") {
					t.Errorf("console %q", console)
				}
			}},
		{"list as a list", "chpasswd: {expire: false, list: ['bob:RANDOM', 'carol:List-Text-2']}\n",
			func(t *testing.T, e *modules.Env, console string) {
				carol, _ := shadow(t, e, "carol")
				verify(t, carol, "List-Text-2")
				if !strings.HasPrefix(console, "Set the following 'random' passwords\n\nbob:") {
					t.Errorf("console %q", console)
				}
			}},
		{"default user's password", "password: Default-Pass-3\n",
			func(t *testing.T, e *modules.Env, console string) {
				admin, last := shadow(t, e, "admin")
				verify(t, admin, "Default-Pass-3")
				if last != "0" {
					t.Errorf("default user's password not expired: %q", last)
				}
				if console != "" {
					t.Errorf("console %q", console)
				}
			}},
		{"password ignored when chpasswd names users", "password: Ignored-4\nchpasswd: {expire: false, users: [{name: bob, password: Bob-5, type: text}]}\n",
			func(t *testing.T, e *modules.Env, console string) {
				if admin, _ := shadow(t, e, "admin"); admin != "!" {
					t.Errorf("admin's password set: %q", admin)
				}
			}},
		{"no default user", "users: [bob]\npassword: Nobody-6\n",
			func(t *testing.T, e *modules.Env, console string) {
				if admin, _ := shadow(t, e, "admin"); admin != "!" {
					t.Errorf("admin's password set: %q", admin)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, console, _ := image(t)
			if err := (SetPasswords{}).Run(context.Background(), e, modtest.Config(t, tt.doc)); err != nil {
				t.Fatal(err)
			}
			tt.check(t, e, console.String())
		})
	}
}

func TestBadEntriesNamedNotShown(t *testing.T) {
	cfg := modtest.Config(t, "chpasswd:\n  list: ['bob-Secret-Without-Colon']\n  users: [{password: Secret-No-Name}]\n")
	p, errs := decode(cfg, func() string { return "admin" }, zap.NewNop())
	var all []string
	for _, err := range errs {
		all = append(all, err.Error())
	}
	got := strings.Join(all, "; ")
	if !strings.Contains(got, "test.yaml:3: chpasswd.users[0]: no name; skipped") || !strings.Contains(got, `test.yaml:2: chpasswd.list[0]: expected "user:password"; skipped`) {
		t.Errorf("errors %q", got)
	}
	if strings.Contains(got, "Secret") {
		t.Errorf("errors quote a password: %q", got)
	}
	if len(p.text)+len(p.hashed)+len(p.random) != 0 {
		t.Errorf("plan %+v", p)
	}
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw, err := RandomPassword(20)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 20 || seen[pw] {
			t.Fatalf("password %q", pw)
		}
		seen[pw] = true
		var d, l, u, p bool
		for _, c := range pw {
			d = d || unicode.IsDigit(c)
			l = l || unicode.IsLower(c)
			u = u || unicode.IsUpper(c)
			p = p || strings.ContainsRune(punctuation, c)
		}
		if !d || !l || !u || !p {
			t.Errorf("%q lacks a class", pw)
		}
	}
	if _, err := RandomPassword(3); err == nil {
		t.Error("3 characters accepted")
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, "chpasswd:\n  expire: maybe\n  users:\n    - {name: bob}\n    - {name: carol, type: plain}\npassword: 3\n", SetPasswords{})
	for _, want := range []string{
		"u.yaml:2:11: error: chpasswd.expire: expected boolean",
		`u.yaml:4:7: warning: chpasswd.users[0]: neither password nor type: RANDOM`,
		"u.yaml:5:27: error: chpasswd.users[1].type: expected one of text, hash, RANDOM",
		"u.yaml:6:11: error: password: expected string",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics\n%s\nlack %q", got, want)
		}
	}
}
