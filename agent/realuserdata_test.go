package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules/all"
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

// TestModuleListFrequency is the EKS warm-pool pattern: a multi-part user
// data with a boothook, a script and cloud_final_modules giving
// scripts-user the frequency always, so the script runs again at a
// reboot; final_message, omitted from the list, does not run; runcmd,
// and disable_ec2_metadata, in cloud_config_modules which no document
// sets, keep their place.
func TestModuleListFrequency(t *testing.T) {
	cfg := "#cloud-config\ncloud_final_modules:\n  - [scripts-user, always]\n  - scripts_per_boot\nfinal_message: not shown\n"
	f := newFixture(t, multipart(
		// The documented boothook form: the header line, then "#!".
		[3]string{"text/cloud-boothook", "hook.sh", "#cloud-boothook\n" + counter("hook")},
		[3]string{"text/x-shellscript", "node.sh", counter("node")},
		[3]string{"text/cloud-config", "cfg.yaml", cfg},
	))
	st := f.boot(boot1)
	if st.State != state.StateDone {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	f.boot(boot2)
	f.wantRuns("after a reboot", map[string]int{"hook": 2, "node": 2})
	if strings.Contains(f.log.String(), "not shown") {
		t.Errorf("final_message ran though the list omits it")
	}
	plan := agent.PlanFor(all.Registry(), configOf(t, cfg))
	var got []string
	for _, it := range plan {
		if it.Stage == "final" {
			got = append(got, it.Name+"/"+string(it.Frequency))
		}
	}
	if want := "software/always scripts_per_boot/per-boot scripts_user/always runcmd/per-instance disable_ec2_metadata/always"; strings.Join(got, " ") != want {
		t.Errorf("final plan %q, want %q", strings.Join(got, " "), want)
	}
}

func configOf(t *testing.T, body string) *config.CloudConfig {
	t.Helper()
	d, err := config.ParseDoc("test", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return config.Merge(d)
}

// TestUserScriptsLexicalOrder: cloud-init's run-parts runs the scripts by
// file name, not in MIME order.
func TestUserScriptsLexicalOrder(t *testing.T) {
	order := func(n string) string { return "#!/bin/sh\necho " + n + " >> \"$EC2INIT_ROOT/out/order\"\n" }
	f := newFixture(t, multipart(
		[3]string{"text/x-shellscript", "20-join.sh", order("20")},
		[3]string{"text/x-shellscript", "10-prep.sh", order("10")},
		[3]string{"text/x-shellscript", "30-done.sh", order("30")},
	))
	if st := f.boot(boot1); st.State != state.StateDone {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	b, err := os.ReadFile(filepath.Join(f.root, "out/order"))
	if err != nil || string(b) != "10\n20\n30\n" {
		t.Errorf("order %q, %v; want 10, 20, 30", b, err)
	}
}

// TestBrokenTemplateSkipsOnlyItsPart: a jinja part that cannot be rendered
// is not run and is named with its line, as cloud-init's jinja handler
// skips it; the other parts still run.
func TestBrokenTemplateSkipsOnlyItsPart(t *testing.T) {
	f := newFixture(t, multipart(
		[3]string{"text/jinja2", "broken.sh", "## template: jinja\n#!/bin/sh\n{% if v1.region %}\necho run >> \"$EC2INIT_ROOT/out/broken\"\n"},
		[3]string{"text/x-shellscript", "fine.sh", counter("fine")},
	))
	st := f.boot(boot1)
	f.wantRuns("boot", map[string]int{"fine": 1, "broken": 0})
	if st.State != state.StateDegraded || !strings.Contains(strings.Join(st.Degraded, "\n"), `"broken.sh" (text/jinja2): line 4: template error`) {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
}

// TestTypeErrors: values of the wrong type inside a runcmd item's list are
// schema warnings at boot and run stringified as Python would, as
// cloud-init runs them; a runcmd item cloud-init cannot shellify (a date)
// is a schema warning and fails runcmd alone, named; the rest of the part
// still runs.
func TestTypeErrors(t *testing.T) {
	f := newFixture(t, "#cloud-config\nruncmd:\n  - echo run >> \"$EC2INIT_ROOT/out/cmd\"\n  - [echo, 3.5, true, null]\n")
	st := f.boot(boot1)
	f.wantRuns("boot", map[string]int{"cmd": 1})
	if len(st.Errors) > 0 || !strings.Contains(strings.Join(st.Degraded, "\n"), "runcmd[1][1]: a float, not a string") {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	f = newFixture(t, "#cloud-config\nbootcmd:\n  - echo run >> \"$EC2INIT_ROOT/out/boot\"\nruncmd:\n  - echo run >> \"$EC2INIT_ROOT/out/cmd\"\n  - 2024-01-02\n")
	st = f.boot(boot1)
	f.wantRuns("boot", map[string]int{"boot": 1, "cmd": 0})
	if !strings.Contains(strings.Join(st.Degraded, "\n"), "runcmd[1] (line 6): a date is not a command") || len(st.Errors) > 0 {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
}

// TestMergeTypeHeader: a MIME part's Merge-Type header merges its
// cloud-config into the parts before it, as cloud-init's handler does, so
// the first part's runcmd is kept.
func TestMergeTypeHeader(t *testing.T) {
	cmd := func(name string) string { return "  - echo run >> \"$EC2INIT_ROOT/out/" + name + "\"\n" }
	ud := "Content-Type: multipart/mixed; boundary=\"B\"\nMIME-Version: 1.0\n\n" +
		"--B\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd:\n" + cmd("base") +
		"--B\nContent-Type: text/cloud-config\nMerge-Type: list(append)+dict(recurse_array)+str()\n\n#cloud-config\nruncmd:\n" + cmd("header") +
		"--B--\n"
	f := newFixture(t, ud)
	if st := f.boot(boot1); st.State != state.StateDone {
		t.Fatalf("boot: %s %q %q", st.State, st.Errors, st.Degraded)
	}
	f.wantRuns("boot", map[string]int{"base": 1, "header": 1})
}
