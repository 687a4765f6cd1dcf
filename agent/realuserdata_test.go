package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules/users"
)

// TestHyphenatedUserKeys is the silent failure of real templates: a user
// listed with ssh-authorized-keys (hyphens, as cloud-init accepts) gets
// its keys, and nothing warns about the spelling.
func TestHyphenatedUserKeys(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example"
	f := newFixture(t, "#cloud-config\nusers:\n  - name: ec2-user\n    ssh-authorized-keys:\n      - "+key+"\n    lock-passwd: true\n")
	sshRoot(t, f.root)
	st := f.bootWith(registry(t, users.UsersGroups{}), func(id string) agent.Options { return f.quietOptions(id, nil) })(boot1)
	if st.State != state.StateDone {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	for _, w := range append(st.Errors, st.Degraded...) {
		if strings.Contains(w, "ssh") || strings.Contains(w, "passwd") {
			t.Errorf("the hyphenated keys were reported: %s", w)
		}
	}
	b, err := os.ReadFile(filepath.Join(f.root, "home/ec2-user/.ssh/authorized_keys"))
	if err != nil || !strings.Contains(string(b), key) {
		t.Fatalf("authorized_keys = %q, %v; want the key", b, err)
	}
}
