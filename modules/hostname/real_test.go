package hostname

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
)

// TestSetLiveReal sets the running hostname with the real hostname(1), in a
// UTS namespace of its own so the machine's name never changes.
func TestSetLiveReal(t *testing.T) {
	hostnameBin, err := exec.LookPath("hostname")
	if err != nil {
		t.Skip("hostname(1) is not installed (Debian package hostname)")
	}
	tests := []struct {
		name        string
		hostnamectl string // a stand-in script; "" for none
	}{
		{"no hostnamectl", ""},
		// hostnamectl without systemd-hostnamed (containers) fails.
		{"hostnamectl fails", "#!/bin/sh\necho 'System has not been booted with systemd' >&2\nexit 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// PATH never holds the real hostnamectl: it would ask
			// systemd-hostnamed, outside the namespace, to rename the host.
			bin := t.TempDir()
			if err := os.Symlink(hostnameBin, filepath.Join(bin, "hostname")); err != nil {
				t.Fatal(err)
			}
			if tt.hostnamectl != "" {
				if err := os.WriteFile(filepath.Join(bin, "hostnamectl"), []byte(tt.hostnamectl), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			r := &sys.Runner{Env: map[string]string{"PATH": bin}}
			const want = "ec2init-uts-test"

			type result struct {
				got  string
				err  error
				skip string
			}
			ch := make(chan result, 1)
			go func() {
				// Never unlocked: the thread, and the namespace with it,
				// ends with this goroutine. Children forked from it
				// inherit the namespace.
				runtime.LockOSThread()
				if err := syscall.Unshare(syscall.CLONE_NEWUTS); err != nil {
					ch <- result{skip: "cannot make a UTS namespace (needs CAP_SYS_ADMIN): " + err.Error()}
					return
				}
				err := setLive(context.Background(), r, want, false)
				// /proc/sys shows the reading thread's namespace: this one.
				b, rerr := os.ReadFile("/proc/sys/kernel/hostname")
				if rerr != nil && err == nil {
					err = rerr
				}
				ch <- result{got: strings.TrimSpace(string(b)), err: err}
			}()
			res := <-ch
			if res.skip != "" {
				t.Skip(res.skip)
			}
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.got != want {
				t.Errorf("hostname in the namespace = %q, want %q", res.got, want)
			}
			if host, _ := os.Hostname(); host == want {
				t.Fatal("the machine's own hostname changed")
			}
		})
	}
}
