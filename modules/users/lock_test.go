package users

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/modules/modtest"
)

// TestLockAndUnlock runs the real useradd, chpasswd and usermod: the
// password's lock follows cloud-init's create_user. lock_passwd (default
// true) locks; false unlocks only when the user data gives a password (an
// empty one leaves the password empty and unlocked) or the existing
// account has one behind its lock; otherwise the account stays as it is.
// No password reaches the logs.
func TestLockAndUnlock(t *testing.T) {
	if _, err := exec.LookPath("chpasswd"); err != nil {
		t.Skip("chpasswd not installed (Debian package passwd)")
	}
	e := debianImage(t)
	core, logs := observer.New(zap.DebugLevel)
	e.Log = zap.New(core)
	modtest.Put(t, e, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"+
		"had:x:900:900::/home/had:/bin/sh\nnone:x:901:901::/home/none:/bin/sh\nbang2:x:902:902::/home/bang2:/bin/sh\n"+
		"open:x:903:903::/home/open:/bin/sh\n")
	modtest.Put(t, e, "/etc/shadow", "root:*:19000:0:99999:7:::\n"+
		"had:!"+secretHash+":19000:0:99999:7:::\nnone:!:19000:0:99999:7:::\nbang2:!!:19000:0:99999:7:::\n"+
		"open:"+secretHash+":19000:0:99999:7:::\n")
	doc := `users:
  - {name: locked, hashed_passwd: "` + secretHash + `"}
  - {name: hashy, hashed_passwd: "` + secretHash + `", lock_passwd: false}
  - {name: plain, plain_text_passwd: "Plain-Secret-2", lock_passwd: false}
  - {name: blank, plain_text_passwd: "", lock_passwd: false}
  - {name: newbare, lock_passwd: false}
  - {name: had, lock_passwd: false}
  - {name: none, lock_passwd: false}
  - {name: bang2, lock_passwd: false}
  - {name: open}
  - {name: both, passwd: "$6$first$IGNOREDHASH", plain_text_passwd: "Plain-Secret-3", lock_passwd: false}
`
	if err := (UsersGroups{}).Run(context.Background(), e, modtest.Config(t, doc)); err != nil {
		t.Fatal(err)
	}
	shadow := map[string]string{}
	for _, line := range strings.Split(modtest.Get(t, e, "/etc/shadow"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 1 {
			shadow[f[0]] = f[1]
		}
	}
	tests := []struct {
		user string
		ok   func(string) bool
		want string
	}{
		{"locked", func(f string) bool { return f == "!"+secretHash }, "the hash, locked"},
		{"hashy", func(f string) bool { return f == secretHash }, "the hash, unlocked"},
		{"plain", func(f string) bool { return strings.HasPrefix(f, "$6$") }, "a SHA-512 hash, unlocked"},
		{"blank", func(f string) bool { return f == "" }, "empty: unlocked with the empty password given"},
		{"newbare", func(f string) bool { return f == "!" }, "! (no password given: left as useradd made it)"},
		{"had", func(f string) bool { return f == secretHash }, "the existing hash, unlocked"},
		{"none", func(f string) bool { return f == "!" }, "! (an existing user without a password stays locked)"},
		{"bang2", func(f string) bool { return f == "!!" }, "!! (nothing behind the lock)"},
		{"open", func(f string) bool { return f == "!"+secretHash }, "locked by default"},
		{"both", func(f string) bool { return strings.HasPrefix(f, "$6$") && !strings.Contains(f, "IGNOREDHASH") }, "plain_text_passwd's hash over passwd's"},
	}
	for _, tt := range tests {
		if f, ok := shadow[tt.user]; !ok || !tt.ok(f) {
			t.Errorf("%s: shadow field %q, want %s", tt.user, strings.ReplaceAll(f, secretHash, "<hash>"), tt.want)
		}
	}
	var warned []string
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, secret := range []string{"SECRET", "Plain-Secret", "IGNOREDHASH"} {
			if strings.Contains(line, secret) {
				t.Errorf("log entry shows a password: %s", line)
			}
		}
		if entry.Level == zap.WarnLevel && strings.Contains(entry.Message, "lock_passwd is false") {
			warned = append(warned, fmt.Sprint(entry.ContextMap()["user"]))
		}
	}
	if got := strings.Join(warned, ","); got != "newbare,none,bang2" {
		t.Errorf("warned of no password to unlock for %q", got)
	}
}
