package pkgmgr

import "testing"

// TestLocked: one lock policy for every tool the modules run; apt-get's
// held lock is exit status 100 and nothing else.
func TestLocked(t *testing.T) {
	tests := []struct {
		tool string
		exit int
		out  string
		want bool
	}{
		{"apt-get", 100, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234", true},
		{"/usr/bin/apt-get", 1, "E: Could not get lock /var/lib/dpkg/lock-frontend", false},
		{"apt-get", 100, "E: Unable to locate package nosuchpkg", false},
		{"dpkg", 2, "dpkg: error: dpkg frontend lock was locked by another process with pid 42", true},
		{"dnf", 1, "Error: Failed to obtain the transaction lock (logged in as: root).", true},
		{"yum", 1, "Another app is currently holding the yum lock; waiting for it to exit...", true},
		{"dnf", 1, "Waiting for process with pid 77 to finish.", true},
		{"dnf", 1, "Error: Unable to find a match: nosuchpkg", false},
		{"rpm", 0, "rpmdb lock", false},
	}
	for _, tt := range tests {
		if got := Locked(tt.tool, tt.exit, []byte(tt.out)); got != tt.want {
			t.Errorf("Locked(%s, %d, %q) = %v", tt.tool, tt.exit, tt.out, got)
		}
	}
}

func TestCheckWord(t *testing.T) {
	for s, ok := range map[string]bool{"curl": true, "nginx=1.18": true, "": false, "--allow-unauthenticated": false, "a b": false, "a\x7f": false} {
		if err := CheckWord("package name", s); (err == nil) != ok {
			t.Errorf("CheckWord(%q) = %v", s, err)
		}
	}
}
