package hostname

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestSetLiveReal sets the running hostname with the real sethostname(2),
// in a UTS namespace of its own so the machine's name never changes.
func TestSetLiveReal(t *testing.T) {
	const want = "ec2init-uts-test"
	type result struct {
		got  string
		err  error
		skip string
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, and the namespace with it, ends with
		// this goroutine.
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_NEWUTS); err != nil {
			ch <- result{skip: "cannot make a UTS namespace (needs CAP_SYS_ADMIN): " + err.Error()}
			return
		}
		err := setLive(want)
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
}
