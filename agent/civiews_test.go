package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/modules"
)

// TestCloudInitViews boots stage by stage, as systemd runs them, and reads
// cloud-init's files as tools written for cloud-init would.
func TestCloudInitViews(t *testing.T) {
	ud := multipart(
		[3]string{"text/x-shellscript", "ok.sh", counter("ok")},
		[3]string{"text/x-shellscript", "fail.sh", "#!/bin/sh\nexit 3\n"},
	)
	f := newFixture(t, ud)
	type v1Status struct {
		V1 map[string]json.RawMessage `json:"v1"`
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(f.root, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, st := range modules.Stages() {
		opts := f.options(boot1)
		opts.Stages = []modules.Stage{st}
		if _, err := agent.Boot(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		var s v1Status
		if err := json.Unmarshal(read("run/cloud-init/status.json"), &s); err != nil {
			t.Fatal(err)
		}
		if string(s.V1["stage"]) != "null" || string(s.V1["datasource"]) != `"DataSourceEc2Local"` {
			t.Errorf("after %s: stage %s, datasource %s", st, s.V1["stage"], s.V1["datasource"])
		}
		_, err := os.Lstat(filepath.Join(f.root, "run/cloud-init/result.json"))
		if done := st == modules.StageFinal; done == os.IsNotExist(err) {
			t.Errorf("after %s: result.json: %v", st, err)
		}
	}
	var res struct {
		V1 struct {
			Datasource string   `json:"datasource"`
			Errors     []string `json:"errors"`
		} `json:"v1"`
	}
	if err := json.Unmarshal(read("run/cloud-init/result.json"), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.V1.Errors) != 1 || !strings.Contains(res.V1.Errors[0], "fail.sh") || strings.Contains(res.V1.Errors[0], "exit status") {
		t.Errorf("result errors %q: want the failed script, named only", res.V1.Errors)
	}
	inst := "var/lib/cloud/instances/i-0123456789abcdef0/"
	if got, err := os.Readlink(filepath.Join(f.root, "var/lib/cloud/instance")); err != nil || got != "/"+strings.TrimSuffix(inst, "/") {
		t.Errorf("instance link %q %v", got, err)
	}
	if string(read(inst+"user-data.txt")) != ud {
		t.Error("user-data.txt is not the raw user data")
	}
	if fi, err := os.Stat(filepath.Join(f.root, inst+"user-data.txt")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("user-data.txt mode %v %v", fi, err)
	}
	if !strings.Contains(string(read(inst+"boot-finished")), " - v. ") {
		t.Error("boot-finished")
	}
	if got := string(read("var/lib/cloud/data/previous-instance-id")); got != "NO_PREVIOUS_INSTANCE_ID\n" {
		t.Errorf("previous-instance-id %q", got)
	}

	// A new instance from an AMI of this disk.
	f.sim.Set("meta-data/instance-id", "i-0aaaaaaaaaaaaaaaa")
	f.boot(boot2)
	if got := string(read("var/lib/cloud/data/previous-instance-id")); got != "i-0123456789abcdef0\n" {
		t.Errorf("previous-instance-id %q", got)
	}
	if got := string(read("var/lib/cloud/data/instance-id")); got != "i-0aaaaaaaaaaaaaaaa\n" {
		t.Errorf("instance-id %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(f.root, "var/lib/cloud/instance")); got != "/var/lib/cloud/instances/i-0aaaaaaaaaaaaaaaa" {
		t.Errorf("instance link %q", got)
	}
}

func TestCloudInitViewsOff(t *testing.T) {
	f := newFixture(t, "#!/bin/sh\ntrue\n")
	opts := f.options(boot1)
	opts.NoCloudInitViews = true
	if _, err := agent.Boot(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"var/lib/cloud", "run/cloud-init"} {
		if _, err := os.Lstat(filepath.Join(f.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s with views off: %v", p, err)
		}
	}
}
