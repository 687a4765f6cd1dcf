package agent_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/modules"
)

// TestFsyncPerBoot counts the fsync calls of a first boot and of a reboot,
// each stage its own process as under systemd, with strace. Durability is
// by stage, not by record: a user script's semaphore is durable before it
// starts, ec2init's own (idempotent) records once at the stage's end, and
// nothing under /run (tmpfs) is synced.
func TestFsyncPerBoot(t *testing.T) {
	if os.Getenv("EC2INIT_COST_ROOT") != "" {
		t.Skip("the child runs TestFsyncPerBootChild")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed (apt-get install strace)")
	}
	if probe := exec.Command(strace, "-f", "-qq", "-o", "/dev/null", "true"); probe.Run() != nil {
		t.Skip("strace cannot trace here (no ptrace permission)")
	}
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(costUserData()))
	root := t.TempDir()
	count := func(bootID string) (int, map[string]int) {
		total, byStage := 0, map[string]int{}
		for _, st := range modules.Stages() {
			out := filepath.Join(t.TempDir(), "strace")
			c := exec.Command(strace, "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,sync_file_range,syncfs,sync", "-o", out,
				os.Args[0], "-test.run=^TestFsyncPerBootChild$", "-test.count=1")
			c.Env = append(os.Environ(), "EC2INIT_COST_ROOT="+root, "EC2INIT_COST_URL="+url,
				"EC2INIT_COST_BOOT="+bootID, "EC2INIT_COST_STAGE="+string(st))
			if b, err := c.CombinedOutput(); err != nil {
				t.Fatalf("stage %s: %v\n%s", st, err, b)
			}
			if os.Getenv("EC2INIT_COST_KEEP") != "" {
				b, _ := os.ReadFile(out)
				t.Logf("%s %s:\n%s", bootID, st, b)
			}
			n := syncCalls(t, out)
			byStage[string(st)] = n
			total += n
		}
		return total, byStage
	}
	first, firstBy := count(boot1)
	reboot(t, root)
	re, reBy := count(boot2)
	t.Logf("fsync calls: first boot %d %v, reboot %d %v", first, firstBy, re, reBy)
	if first > 12 {
		t.Errorf("first boot: %d fsync calls %v, want at most 12", first, firstBy)
	}
	if re > 4 {
		t.Errorf("reboot: %d fsync calls %v, want at most 4", re, reBy)
	}
}

// syncCalls counts the sync calls strace wrote to file.
func syncCalls(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, call := range []string{"fsync(", "fdatasync(", "sync_file_range(", "syncfs(", "sync("} {
			if strings.Contains(line, " "+call) || strings.HasPrefix(line, call) {
				n++
				break
			}
		}
	}
	return n
}

// TestFsyncPerBootChild is one stage of TestFsyncPerBoot's boots.
func TestFsyncPerBootChild(t *testing.T) {
	root := os.Getenv("EC2INIT_COST_ROOT")
	if root == "" {
		t.Skip("only run as TestFsyncPerBoot's child")
	}
	opts := stageOptions(t, root, os.Getenv("EC2INIT_COST_URL"), os.Getenv("EC2INIT_COST_BOOT"),
		modules.Stage(os.Getenv("EC2INIT_COST_STAGE")))
	if _, err := agent.Boot(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
}
