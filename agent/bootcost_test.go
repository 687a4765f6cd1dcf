package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
)

// costUserData is the user data the measurements use: a script,
// one write_files, one runcmd.
func costUserData() string {
	owner := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	return multipart(
		[3]string{"text/x-shellscript", "noop.sh", "#!/bin/sh\n:\n"},
		[3]string{"text/cloud-config", "config.yaml", "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hello\n    owner: '" +
			owner + "'\nruncmd:\n  - [/bin/true]\n"},
	)
}

// stageOptions is one stage's boot as systemd starts it: its own process,
// so its own IMDS client (sharing nothing in memory with the others).
func stageOptions(t testing.TB, root, url, bootID string, st modules.Stage) agent.Options {
	t.Helper()
	client, err := imds.New(agent.IMDSConfig(root, imds.Config{Endpoint: url, MaxAttempts: 3, RequestTimeout: 2 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return agent.Options{Root: root, IMDS: client, Log: zap.NewNop(), BootID: bootID, Stages: []modules.Stage{st},
		IdentifyDeadline: 10 * time.Second, Registry: all.Registry()}
}

// bootStages boots root once through the four stages, one Boot call
// each, and wants it done.
func bootStages(t *testing.T, root, url, bootID string) {
	t.Helper()
	for _, st := range modules.Stages() {
		status, err := agent.Boot(context.Background(), stageOptions(t, root, url, bootID, st))
		if err != nil {
			t.Fatalf("stage %s: %v", st, err)
		}
		if st == modules.StageFinal && status.State != state.StateDone {
			t.Fatalf("boot %s: %s %q %q", bootID, status.State, status.Errors, status.Degraded)
		}
	}
}

// TestIMDSRequestsPerBoot counts what a first boot and a reboot ask IMDS,
// over the four stage processes of each: a first boot takes one session
// token and asks each path at most once (one crawl serves the instance
// facts, instance-data.json and jinja); a reboot of a known instance asks
// a token and the instance id, nothing more.
func TestIMDSRequestsPerBoot(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte(costUserData()))
	root := t.TempDir()

	bootStages(t, root, url, boot1)
	first := sim.Stats()
	t.Logf("first boot: %d requests, %d token PUTs, %d GETs", first.Requests, first.TokenPuts, first.Gets)
	if first.TokenPuts != 1 {
		t.Errorf("first boot: %d token PUTs, want 1 shared by the stages", first.TokenPuts)
	}
	var repeated []string
	for p, n := range first.ByPath {
		if n > 1 {
			repeated = append(repeated, fmt.Sprintf("%s x%d", p, n))
		}
	}
	sort.Strings(repeated)
	if len(repeated) > 0 {
		t.Errorf("first boot asked paths more than once: %s", strings.Join(repeated, ", "))
	}

	sim.ResetStats()
	reboot(t, root)
	bootStages(t, root, url, boot2)
	re := sim.Stats()
	t.Logf("reboot: %d requests, %d token PUTs, by path %v", re.Requests, re.TokenPuts, re.ByPath)
	if re.Requests > 3 {
		t.Errorf("reboot: %d requests (%v, %d token PUTs), want at most 3", re.Requests, re.ByPath, re.TokenPuts)
	}
	if re.TokenPuts != 1 || re.ByPath["meta-data/instance-id"] != 1 || re.ByPath["user-data"] != 1 {
		t.Errorf("reboot: %d token PUTs, by path %v; want one token, the instance id and the user data (read once a boot, as cloud-init's local stage does)",
			re.TokenPuts, re.ByPath)
	}
}

// reboot empties /run under root, as a reboot empties the tmpfs.
func reboot(t *testing.T, root string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, "run")); err != nil {
		t.Fatal(err)
	}
}
