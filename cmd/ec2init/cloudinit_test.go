package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/analyze"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/internal/testkit"
)

var updateGolden = flag.Bool("update-cloudinit-golden", false, "rewrite testdata/cloudinit/*.golden")

// ciResult is one cloud-init command's outcome.
type ciResult struct {
	stdout, stderr string
	code           int
}

// ciRun runs `cloud-init args...` over e's root as the user uid, without
// cobra and without a process.
func ciRun(t *testing.T, e *env, uid int, args ...string) ciResult {
	t.Helper()
	var out, errb strings.Builder
	c := ciIO{prog: "cloud-init", stdin: strings.NewReader(""), stdout: &out, stderr: &errb, uid: uid, now: time.Now}
	err := runCloudInitIO(context.Background(), e, c, args)
	code := 0
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
		if ee.msg != "" {
			errb.WriteString(ee.msg + "\n")
		}
	case err != nil:
		t.Fatalf("cloud-init %q: %v", args, err)
	}
	return ciResult{out.String(), errb.String(), code}
}

// bootedEnv is a root a real boot on the IMDS simulator prepared.
func bootedEnv(t *testing.T, userData string) *env {
	t.Helper()
	e, _ := testEnv(t, userData)
	if err := runBoot(context.Background(), e, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &testkit.SyncBuffer{}); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
	}
	return e
}

// Times and the simulator's port differ from run to run.
var ciVolatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`("?(?:start|finished)"?:) \d+\.\d+`), "$1 <uptime>"},
	{regexp.MustCompile(`(last_update"?:) "?[A-Z][a-z]{2}, [^"\n]+"?`), "$1 <last_update>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<port>"},
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	for _, v := range ciVolatile {
		got = v.re.ReplaceAllString(got, v.with)
	}
	p := filepath.Join("testdata", "cloudinit", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update-cloudinit-golden)", err)
	}
	if got != string(want) {
		t.Errorf("%s:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestCloudInitStatus: cloud-init status in its three formats over roots
// real boots prepared, and its exit codes: 0 done, 1 error, 2 degraded.
func TestCloudInitStatus(t *testing.T) {
	boots := []struct {
		name, userData string
		code           int
	}{
		{"done", "#cloud-config\nruncmd: [[echo, ok]]\n", 0},
		{"error", "#cloud-config\nruncmd: [[sh, -c, 'exit 3']]\n", 1},
		{"degraded", "#cloud-config\nruncmd: [[echo, ok]]\nno_such_key: 1\n", 2},
	}
	for _, b := range boots {
		t.Run(b.name, func(t *testing.T) {
			e := bootedEnv(t, b.userData)
			for _, f := range []struct {
				name string
				args []string
			}{
				{"tabular", []string{"status"}},
				{"long", []string{"status", "--long"}},
				{"json", []string{"status", "--format", "json"}},
				{"yaml", []string{"status", "--format=yaml"}},
				{"wait", []string{"status", "-w"}},
			} {
				r := ciRun(t, e, 0, f.args...)
				if r.code != b.code || r.stderr != "" {
					t.Errorf("%q: exit %d, want %d; stderr %q", f.args, r.code, b.code, r.stderr)
				}
				if f.name != "wait" {
					golden(t, "status-"+b.name+"-"+f.name, r.stdout)
				} else if !strings.HasPrefix(r.stdout, "status: ") {
					t.Errorf("status -w when done: %q", r.stdout)
				}
			}
		})
	}
	t.Run("not started", func(t *testing.T) {
		e, _ := testEnv(t, "")
		r := ciRun(t, e, 0, "status", "--long")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "status: not started\n") || !strings.Contains(r.stdout, "detail: Cloud-init enabled by") {
			t.Errorf("%+v", r)
		}
		if err := os.MkdirAll(filepath.Join(e.root, "etc/cloud"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFileT(t, filepath.Join(e.root, "etc/cloud/cloud-init.disabled"), nil, 0o644)
		r = ciRun(t, e, 0, "status", "--format", "json", "--wait") // disabled: no waiting
		if r.code != 0 || !strings.Contains(r.stdout, `"boot_status_code": "disabled-by-marker-file"`) || !strings.Contains(r.stdout, `"status": "disabled"`) {
			t.Errorf("%+v", r)
		}
		if err := os.Remove(filepath.Join(e.root, "etc/cloud/cloud-init.disabled")); err != nil {
			t.Fatal(err)
		}
		writeFileT(t, filepath.Join(e.root, "proc/cmdline"), []byte("root=/dev/xvda1 ec2init=disabled\n"), 0o644)
		if r := ciRun(t, e, 0, "status", "--long"); !strings.Contains(r.stdout, "boot_status_code: disabled-by-kernel-command-line\n") ||
			!strings.Contains(r.stdout, "detail: Cloud-init disabled by kernel parameter ec2init=disabled\n") {
			t.Errorf("%+v", r)
		}
	})
}

// TestCloudInitStatusWait: --wait prints a dot per poll while the boot has
// not ended, then the status.
func TestCloudInitStatusWait(t *testing.T) {
	e, _ := testEnv(t, "#!/bin/sh\nsleep 1\n")
	done := make(chan ciResult, 1)
	go func() { done <- ciRun(t, e, 0, "status", "--wait") }()
	time.Sleep(600 * time.Millisecond)
	if err := runBoot(context.Background(), e, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &testkit.SyncBuffer{}); err != nil {
		t.Fatal(err)
	}
	var r ciResult
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("status --wait did not end after the boot")
	}
	if r.code != 0 || !regexp.MustCompile(`^\.{2,}status: done\n$`).MatchString(r.stdout) {
		t.Errorf("%+v", r)
	}
}

// TestCloudInitQuery: query's keys, lookups (names and their underscore
// aliases), its errors, and what a user who is not root sees.
func TestCloudInitQuery(t *testing.T) {
	e := bootedEnv(t, "#cloud-config\nruncmd: [[echo, ok]]\n")
	golden(t, "query-list-keys", ciRun(t, e, 0, "query", "--list-keys").stdout)
	golden(t, "query-list-keys-nonroot", ciRun(t, e, 1000, "query", "--list-keys").stdout)
	golden(t, "query-list-keys-v1", ciRun(t, e, 0, "query", "--list-keys", "v1").stdout)
	golden(t, "query-list-keys-ds", ciRun(t, e, 0, "query", "-l", "ds.meta_data").stdout)
	other := filepath.Join(t.TempDir(), "other.json")
	writeFileT(t, other, []byte(`{"v1": {"region": "eu-west-3", "n": 1, "f": 1.5}}`), 0o644)
	tests := []struct {
		uid            int
		args           []string
		code           int
		stdout, stderr string
	}{
		{0, []string{"query", "v1.region"}, 0, "us-east-1\n", ""},
		{0, []string{"query", "region"}, 0, "us-east-1\n", ""},
		{0, []string{"query", "ds.meta_data.instance_id"}, 0, "i-0123456789abcdef0\n", ""},
		{0, []string{"query", "ds.meta-data.placement.availability-zone"}, 0, "us-east-1a\n", ""},
		{0, []string{"query", "v1.public_ssh_keys"}, 0, "[\n \"ssh-ed25519 ", ""},
		{0, []string{"query", "userdata"}, 0, "#cloud-config\nruncmd: [[echo, ok]]\n\n", ""},
		{0, []string{"query", "combined_cloud_config.runcmd"}, 0, "[\n [\n  \"echo\",\n  \"ok\"\n ]\n]\n", ""},
		{1000, []string{"query", "combined_cloud_config"}, 0, "<redacted for non-root user> file:/run/cloud-init/combined-cloud-config.json\n", ""},
		{0, []string{"query", "--format", "{{ v1.cloud_id }}/{{ ds.meta_data.placement.region }}/{{ cloud_name }}"}, 0, "aws/us-east-1/aws\n", ""},
		{0, []string{"query", "-f", "{{ nope }}"}, 0, "CI_MISSING_JINJA_VAR/nope\n", "Could not render jinja template variables in file 'query command line'"},
		{0, []string{"query", "-i", other, "v1"}, 0, "{\n \"f\": 1.5,\n \"n\": 1,\n \"region\": \"eu-west-3\"\n}\n", ""},
		{0, []string{"query", "nope"}, 1, "", "query.py[ERROR]: Undefined instance-data key 'nope'"},
		{0, []string{"query", "v1.nope"}, 1, "", "instance-data 'v1' has no 'nope'"},
		{0, []string{"query", "--list-keys", "v1.region"}, 1, "", "--list-keys provided but 'v1.region' is not a dict"},
		{0, []string{"query"}, 1, "usage: cloud-init query", "Expected one of the options: --all, --format, --list-keys or varname"},
		{0, []string{"query", "-i", "/nonexistent.json", "v1"}, 1, "", "Missing instance-data file: /nonexistent.json"},
		{1000, []string{"query", "merged_cfg"}, 0, "redacted for non-root user\n", ""},
		{1000, []string{"query", "userdata"}, 0, "<redacted for non-root user> file:/var/lib/cloud/instance/user-data.txt\n", ""},
		{1000, []string{"query", "v1.instance_id"}, 0, "i-0123456789abcdef0\n", ""},
	}
	for _, tt := range tests {
		r := ciRun(t, e, tt.uid, tt.args...)
		if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) || (tt.stderr == "" && r.stderr != "") {
			t.Errorf("uid %d %q: %+v", tt.uid, tt.args, r)
		}
	}
	// Root's view has the image's config; anyone else's does not.
	writeFileT(t, filepath.Join(e.root, "etc/ec2init/cloud.cfg.d/50-x.cfg"), []byte("#cloud-config\nntp: {servers: [ntp.example]}\n"), 0o644)
	e2 := bootedEnvAt(t, e)
	if r := ciRun(t, e2, 0, "query", "merged_cfg.ntp.servers"); r.stdout != "[\n \"ntp.example\"\n]\n" {
		t.Errorf("root merged_cfg: %+v", r)
	}
	if r := ciRun(t, e2, 1000, "query", "-a"); strings.Contains(r.stdout, "ntp.example") || !strings.Contains(r.stdout, `"merged_cfg": "redacted for non-root user"`) {
		t.Errorf("non-root --all shows the system config:\n%s", r.stdout)
	}
}

// bootedEnvAt boots e's root again, as a new boot.
func bootedEnvAt(t *testing.T, e *env) *env {
	t.Helper()
	e2 := *e
	e2.bootID = "00000000-0000-4000-8000-00000000000b"
	if err := runBoot(context.Background(), &e2, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &testkit.SyncBuffer{}); err != nil {
		t.Fatal(err)
	}
	return &e2
}

// TestCloudInitSingle: one module, gated by its frequency unless told
// --frequency always, and cloud-init's messages for a missing one.
func TestCloudInitSingle(t *testing.T) {
	e := bootedEnv(t, "#cloud-config\nruncmd:\n  - echo ran >> \"$EC2INIT_ROOT/runs\"\n")
	runs := func() int {
		b, _ := os.ReadFile(filepath.Join(e.root, "runs"))
		return strings.Count(string(b), "ran\n")
	}
	if runs() != 1 {
		t.Fatalf("the boot ran runcmd %d times", runs())
	}
	for _, tt := range []struct {
		args   []string
		code   int
		runs   int
		stderr string
	}{
		{[]string{"single", "--name", "runcmd"}, 0, 1, ""}, // per-instance, done already
		{[]string{"single", "-n", "cc_runcmd", "--frequency", "always"}, 0, 2, ""},
		{[]string{"single", "--name=runcmd", "--frequency=always"}, 0, 3, ""},
		{[]string{"single", "--name", "nope"}, 1, 3, "Did not run nope, does it exist?"},
		{[]string{"single"}, 2, 3, "error: the following arguments are required: --name/-n"},
		{[]string{"single", "--name", "runcmd", "--frequency", "weekly"}, 2, 3, "argument --frequency: invalid choice: 'weekly' (choose from 'instance', 'always', 'once')"},
	} {
		r := ciRun(t, e, 0, tt.args...)
		if r.code != tt.code || runs() != tt.runs || !strings.Contains(r.stderr, tt.stderr) {
			t.Errorf("%q: %+v, runs %d (want %d)", tt.args, r, runs(), tt.runs)
		}
	}
}

// TestCloudInitSingleScripts: single runs a script slot's scripts, the
// user data's for scripts_user.
func TestCloudInitSingleScripts(t *testing.T) {
	e := bootedEnv(t, "#!/bin/sh\necho ran >> \"$EC2INIT_ROOT/runs\"\n")
	runs := func() int {
		b, _ := os.ReadFile(filepath.Join(e.root, "runs"))
		return strings.Count(string(b), "ran\n")
	}
	for i, args := range [][]string{{"single", "-n", "scripts_user"}, {"single", "-n", "scripts-user", "--frequency", "always"}} {
		if r := ciRun(t, e, 0, args...); r.code != 0 || runs() != i+1 {
			t.Errorf("%q: %+v, runs %d", args, r, runs())
		}
	}
}

// TestCloudInitStages: init --local, init, modules --mode config|final run
// ec2init's stages; cloud-init's status then says done.
func TestCloudInitStages(t *testing.T) {
	e, _ := testEnv(t, "#!/bin/sh\necho final >> \"$EC2INIT_ROOT/ran\"\n")
	for _, args := range [][]string{{"init", "--local"}, {"init"}, {"modules", "--mode", "config"}, {"modules", "--mode=final"}} {
		if r := ciRun(t, e, 0, args...); r.code != 0 {
			t.Fatalf("%q: %+v", args, r)
		}
		if _, err := os.Stat(filepath.Join(e.root, "ran")); (err == nil) != (args[0] == "modules" && strings.HasSuffix(args[len(args)-1], "final")) {
			t.Errorf("after %q: script ran: %v", args, err == nil)
		}
	}
	if r := ciRun(t, e, 0, "status"); r.code != 0 || r.stdout != "status: done\n" {
		t.Errorf("%+v", r)
	}
	blame := regexp.MustCompile(`^-- Boot Record 01 --\n(     \d\d\.\d{5}s \((init-local|init-network|modules-config|modules-final)/config-[a-z_:.0-9-]+\)\n)+\n1 boot records analyzed\n$`)
	if r := ciRun(t, e, 0, "analyze", "blame"); r.code != 0 || !blame.MatchString(r.stdout) || !strings.Contains(r.stdout, "(modules-final/config-scripts_user") {
		t.Errorf("analyze blame: %+v", r)
	}
	r := ciRun(t, e, 0, "analyze", "show")
	for _, want := range []string{"-- Boot Record 01 --\nThe total time elapsed", "Starting stage: init-local\n", "Finished stage: (modules-final) ",
		"|`->running config-scripts_user:part-001 with frequency once-per-instance @", "Total Time: ", "\n1 boot records analyzed\n"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("analyze show: no %q in %+v", want, r)
		}
	}
	if r := ciRun(t, e, 0, "analyze", "dump"); r.code != 0 || !strings.Contains(r.stdout, `"name": "modules-final/config-scripts_user:part-001"`) || !strings.Contains(r.stdout, `"result": "SUCCESS"`) {
		t.Errorf("analyze dump: %+v", r)
	}
	if r := ciRun(t, e, 0, "analyze", "show", "-f", "%n %r"); !strings.Contains(r.stdout, "\nmodules-final/config-scripts_user:part-001 SUCCESS\n") {
		t.Errorf("analyze show -f: %+v", r)
	}
	if r := ciRun(t, e, 0, "modules", "--mode", "later"); r.code != 2 || !strings.Contains(r.stderr, "argument --mode/-m: invalid choice: 'later'") {
		t.Errorf("%+v", r)
	}
}

// TestCloudInitClean: cloud-init's and ec2init's state go, the seed stays
// unless --seed, and --logs, --machine-id, --configs do their part.
func TestCloudInitClean(t *testing.T) {
	e := bootedEnv(t, "#!/bin/sh\ntrue\n")
	at := func(p string) string { return filepath.Join(e.root, p) }
	writeFileT(t, at("var/lib/cloud/seed/nocloud/user-data"), []byte("x"), 0o644)
	writeFileT(t, at("etc/ssh/sshd_config.d/50-cloud-init.conf"), []byte("PasswordAuthentication no\n"), 0o644)
	writeFileT(t, at("etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	writeFileT(t, at("var/log/cloud-init.log"), []byte("old\n"), 0o644)
	r := ciRun(t, e, 0, "clean", "--logs", "--machine-id", "-c", "ssh_config", "network")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
	left, _ := os.ReadDir(at("var/lib/cloud"))
	if len(left) != 1 || left[0].Name() != "seed" {
		t.Errorf("/var/lib/cloud after clean: %v", left)
	}
	for _, p := range []string{"var/lib/ec2init/instances", "etc/ssh/sshd_config.d/50-cloud-init.conf", "var/log/cloud-init.log", "var/log/ec2init.log"} {
		if _, err := os.Lstat(at(p)); !os.IsNotExist(err) {
			t.Errorf("%s after clean: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(at("etc/machine-id")); string(b) != "uninitialized\n" {
		t.Errorf("machine-id %q", b)
	}
	if r := ciRun(t, e, 0, "clean", "--seed"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(at("var/lib/cloud/seed")); !os.IsNotExist(err) {
		t.Errorf("seed after clean --seed: %v", err)
	}
	if r := ciRun(t, e, 0, "clean", "-c", "bogus"); r.code != 2 || !strings.Contains(r.stderr, "argument -c/--configs: invalid choice: 'bogus'") {
		t.Errorf("%+v", r)
	}
	if r := ciRun(t, e, 0, "status"); r.stdout != "status: not started\n" {
		t.Errorf("status after clean: %+v", r)
	}
}

// TestCloudInitSchema: -c FILE and --system with cloud-init's messages,
// through ec2init's schemas.
func TestCloudInitSchema(t *testing.T) {
	e := bootedEnv(t, "#cloud-config\nruncmd: [[echo, ok]]\n")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	writeFileT(t, good, []byte("#cloud-config\npackages: [nginx]\n"), 0o644)
	writeFileT(t, bad, []byte("#cloud-config\npackages: 5\n"), 0o644)
	for _, tt := range []struct {
		uid            int
		args           []string
		code           int
		stdout, stderr string
	}{
		{0, []string{"schema", "-c", good}, 0, "Valid schema " + good + "\n", ""},
		{0, []string{"schema", "--config-file", bad}, 1, "Invalid user-data " + bad + "\n", "Error: Invalid schema: user-data"},
		{0, []string{"schema", "-c", bad, "--annotate"}, 1, "#cloud-config\npackages: 5\t\t# E1\n", "Error: Invalid schema: user-data"},
		{0, []string{"schema", "--system"}, 0, "Valid schema user-data\n", ""},
		{1000, []string{"schema", "--system"}, 1, "", "Unable to read system userdata or vendordata as non-root user"},
		{0, []string{"schema"}, 1, "", "Expected one of --config-file or --system arguments"},
		{0, []string{"schema", "-c", filepath.Join(dir, "none")}, 1, "", "does not exist"},
		{0, []string{"devel", "schema", "-c", good}, 0, "Valid schema", ""},
	} {
		r := ciRun(t, e, tt.uid, tt.args...)
		if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
			t.Errorf("%q: %+v", tt.args, r)
		}
	}
}

// TestCloudInitRender: devel render fills a jinja user-data file from the
// instance data the boot wrote.
func TestCloudInitRender(t *testing.T) {
	e := bootedEnv(t, "")
	dir := t.TempDir()
	tmpl, plain := filepath.Join(dir, "ud.yaml"), filepath.Join(dir, "plain.yaml")
	writeFileT(t, tmpl, []byte("## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}-{{ ds.meta_data.placement.region }}\n"), 0o644)
	writeFileT(t, plain, []byte("#cloud-config\n"), 0o644)
	if r := ciRun(t, e, 0, "devel", "render", tmpl); r.code != 0 || r.stdout != "#cloud-config\nhostname: ip-10-0-1-23-us-east-1\n" {
		t.Errorf("%+v", r)
	}
	if r := ciRun(t, e, 0, "devel", "render", plain); r.code != 1 || !strings.Contains(r.stderr, "Could not render non-jinja payload") {
		t.Errorf("%+v", r)
	}
	if r := ciRun(t, e, 0, "devel", "render", "-i", filepath.Join(dir, "none.json"), tmpl); r.code != 1 || !strings.Contains(r.stderr, "Missing instance-data.json file") {
		t.Errorf("%+v", r)
	}
}

// TestCloudInitMakeMime: make-mime's message is user data ec2init's
// parser reads back part by part.
func TestCloudInitMakeMime(t *testing.T) {
	e, _ := testEnv(t, "")
	dir := t.TempDir()
	cfg, script := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "setup.sh")
	writeFileT(t, cfg, []byte("#cloud-config\nruncmd: [[echo, héllo]]\n"), 0o644)
	writeFileT(t, script, []byte("#!/bin/sh\n"+strings.Repeat("echo a long line of shell\n", 10)), 0o644)
	r := ciRun(t, e, 0, "devel", "make-mime", "-a", cfg+":cloud-config", "--attach", script+":x-shellscript-per-boot")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
	if !regexp.MustCompile(`^Content-Type: multipart/mixed; boundary="===============\d{19}=="\nMIME-Version: 1.0\n\n--`).MatchString(r.stdout) ||
		!strings.HasSuffix(r.stdout, "==--\n\n") {
		t.Errorf("not Python's layout:\n%s", r.stdout)
	}
	res, err := userdata.Parse([]byte(r.stdout), userdata.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 2 || len(res.Warnings) != 0 {
		t.Fatalf("parts %d, warnings %v", len(res.Parts), res.Warnings)
	}
	for i, want := range []struct{ ctype, file string }{{"text/cloud-config", cfg}, {"text/x-shellscript-per-boot", script}} {
		body, _ := os.ReadFile(want.file)
		if p := res.Parts[i]; p.ContentType != want.ctype || p.Filename != want.file || string(p.Body) != string(body) {
			t.Errorf("part %d: %s %s %q", i, p.ContentType, p.Filename, p.Body)
		}
	}
	if r := ciRun(t, e, 0, "devel", "make-mime", "--list-types"); r.code != 0 || !strings.HasPrefix(r.stdout, "cloud-boothook\ncloud-config\n") {
		t.Errorf("--list-types: %+v", r)
	}
	if r := ciRun(t, e, 0, "devel", "make-mime", "-a", cfg+":nonsense"); r.code != 1 || !strings.Contains(r.stderr, "ERROR: content type 'text/nonsense' for attachment 1 may be incorrect!") {
		t.Errorf("unknown type: %+v", r)
	}
	if r := ciRun(t, e, 0, "devel", "make-mime", "-f", "-a", cfg+":nonsense"); r.code != 0 || !strings.Contains(r.stderr, "WARNING: content type") {
		t.Errorf("unknown type, --force: %+v", r)
	}
	if r := ciRun(t, e, 0, "devel", "make-mime", "-a", "nocolon"); r.code != 2 || !strings.Contains(r.stderr, "Invalid value for 'nocolon'") {
		t.Errorf("%+v", r)
	}
}

// TestCloudInitCollectLogs: the tarball has logs, status and public
// instance data; user data and the sensitive data only on request.
func TestCloudInitCollectLogs(t *testing.T) {
	e := bootedEnv(t, "#!/bin/sh\necho s3cr3t-output\n")
	list := func(args ...string) map[string]string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "logs.tgz")
		if r := ciRun(t, e, 0, append([]string{"collect-logs", "-t", out}, args...)...); r.code != 0 {
			t.Fatalf("%+v", r)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			_, name, _ := strings.Cut(h.Name, "/")
			files[name] = string(b)
		}
		return files
	}
	names := func(m map[string]string) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	plain := list()
	for _, want := range []string{"var/log/ec2init.log", "run/cloud-init/instance-data.json", "run/cloud-init/status.json", "cloud-init-status.txt", "version"} {
		if _, ok := plain[want]; !ok {
			t.Errorf("no %s in %v", want, names(plain))
		}
	}
	for name, body := range plain {
		if strings.Contains(body, "s3cr3t") || strings.Contains(name, "user-data") || strings.Contains(name, "sensitive") {
			t.Errorf("%s in the tarball without --include-userdata", name)
		}
	}
	full := list("--include-userdata")
	if !strings.Contains(full["var/lib/cloud/instance/user-data.txt"], "s3cr3t") || full["run/cloud-init/instance-data-sensitive.json"] == "" {
		t.Errorf("--include-userdata: %v", names(full))
	}
	if r := ciRun(t, e, 1000, "collect-logs"); r.code != 1 || !strings.Contains(r.stderr, "must be run as root") {
		t.Errorf("non-root: %+v", r)
	}
}

// TestCloudInitArguments: argparse's failures, exit 2 with usage on
// stderr, and the top-level flags.
func TestCloudInitArguments(t *testing.T) {
	e, _ := testEnv(t, "")
	for _, tt := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{}, 2, "", "error: a subcommand is required\n\nusage: cloud-init [-h] [--version]"},
		{[]string{"nope"}, 2, "", "error: argument subcommand: invalid choice: 'nope' (choose from 'init', 'modules', 'single', 'query',"},
		{[]string{"status", "--bogus"}, 2, "", "error: unrecognized arguments: --bogus\n\nusage: cloud-init status [-h] [--format {json,tabular,yaml}] [-l] [-w]"},
		{[]string{"status", "--format", "xml"}, 2, "", "argument --format: invalid choice: 'xml' (choose from 'json', 'tabular', 'yaml')"},
		{[]string{"status", "--format"}, 2, "", "argument --format: expected one argument"},
		{[]string{"status", "extra"}, 2, "", "unrecognized arguments: extra"},
		{[]string{"--debug"}, 1, "usage: cloud-init [-h]", "No Subcommand specified."},
		{[]string{"--version"}, 0, "cloud-init " + cloudInitCompatVersion + "\n", ""},
		{[]string{"-h"}, 0, "usage: cloud-init [-h]", ""},
		{[]string{"status", "--help"}, 0, "usage: cloud-init status [-h]", ""},
		{[]string{"features"}, 0, "ALLOW_EC2_MIRRORS_ON_NON_AWS_INSTANCE_TYPES\n", ""},
		{[]string{"analyze"}, 2, "", "the following arguments are required: subcommand"},
		{[]string{"devel", "net-convert"}, 1, "", "not supported by ec2init"},
		{[]string{"devel", "render"}, 2, "", "the following arguments are required: user_data"},
	} {
		r := ciRun(t, e, 0, tt.args...)
		if r.code != tt.code || !strings.HasPrefix(r.stdout, tt.stdout) || !strings.Contains(r.stderr, tt.stderr) {
			t.Errorf("%q: %+v", tt.args, r)
		}
	}
}

// TestCloudID: cloud-id over a booted root, and before any boot.
func TestCloudID(t *testing.T) {
	e := bootedEnv(t, "")
	run := func(e *env, args ...string) ciResult {
		var out, errb strings.Builder
		err := ciCloudID(e, ciIO{prog: "cloud-id", stdout: &out, stderr: &errb, now: time.Now}, args)
		code := 0
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else if err != nil {
			t.Fatal(err)
		}
		return ciResult{out.String(), errb.String(), code}
	}
	if r := run(e); r.code != 0 || r.stdout != "aws\n" {
		t.Errorf("%+v", r)
	}
	if r := run(e, "--long"); r.code != 0 || r.stdout != "aws\tus-east-1\n" {
		t.Errorf("%+v", r)
	}
	if r := run(e, "-j"); r.code != 0 || !strings.Contains(r.stdout, "\"cloud_id\": \"aws\"") || !strings.Contains(r.stderr, "DEPRECATED") {
		t.Errorf("%+v", r)
	}
	fresh, _ := testEnv(t, "")
	if r := run(fresh); r.code != 3 || r.stdout != "not started\n" {
		t.Errorf("%+v", r)
	}
}

// TestCloudInitArgv0: the binary answers as cloud-init under that name.
func TestCloudInitArgv0(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "cloud-init")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, link, "--version"); r.code != 0 || r.stdout != link+" "+cloudInitCompatVersion+"\n" {
		t.Errorf("--version: %+v", r)
	}
	if r := runCLI(t, link, "status", "--bogus"); r.code != 2 || !strings.HasPrefix(r.stderr, "error: unrecognized arguments: --bogus") {
		t.Errorf("status --bogus: %+v", r)
	}
}

// TestCloudInitQueryKeysAsDebian compares query --list-keys with what
// Debian bookworm's cloud-init 22.4 printed, booted in a systemd-nspawn
// container against the same IMDS simulator (test/differential's image;
// recorded in testdata/cloudinit/debian-22.4-*.txt). Each difference is
// named with its reason.
func TestCloudInitQueryKeysAsDebian(t *testing.T) {
	e := bootedEnv(t, "#cloud-config\nruncmd: [[echo, ok]]\n")
	for _, tt := range []struct {
		path string
		// extra: keys ec2init has and 22.4 had not; missing: the reverse.
		extra, missing []string
	}{
		// cloud-init 23.1+ adds these (query's combined_cloud_config, the
		// sensitive file's features, merged_system_cfg).
		{"", []string{"combined_cloud_config", "features", "merged_system_cfg"}, nil},
		{"v1", nil, nil},
		// The identity document: cloud-init crawls it on AWS only, which a
		// container without AWS's DMI data is not.
		{"ds", []string{"dynamic"}, nil},
		{"ds.meta_data", nil, nil},
	} {
		name := "debian-22.4-list-keys.txt"
		args := []string{"query", "--list-keys"}
		if tt.path != "" {
			name = "debian-22.4-list-keys-" + tt.path + ".txt"
			args = append(args, tt.path)
		}
		b, err := os.ReadFile(filepath.Join("testdata", "cloudinit", name))
		if err != nil {
			t.Fatal(err)
		}
		debian := strings.Fields(string(b))
		r := ciRun(t, e, 0, args...)
		if r.code != 0 {
			t.Fatalf("%q: %+v", args, r)
		}
		ours := strings.Fields(r.stdout)
		extra, missing := difference(ours, debian), difference(debian, ours)
		if strings.Join(extra, " ") != strings.Join(tt.extra, " ") || strings.Join(missing, " ") != strings.Join(tt.missing, " ") {
			t.Errorf("%q: ec2init has also %v (want %v), lacks %v (want %v)", args, extra, tt.extra, missing, tt.missing)
		}
	}
}

// difference is what a has and b has not, sorted.
func difference(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// TestCloudInitAnalyzeBoot: analyze boot's record, and cloud-init's
// failure text where the kernel's times are unknown.
func TestCloudInitAnalyzeBoot(t *testing.T) {
	k := time.Date(2026, 12, 1, 10, 0, 0, 250000000, time.UTC)
	var b strings.Builder
	err := ciAnalyzeBoot(&b, analyze.BootTimes{KernelStart: k, UserspaceStart: k.Add(1500 * time.Millisecond), EC2InitStart: k.Add(4 * time.Second)})
	want := "-- Most Recent Boot Record --\n" +
		"    Kernel Started at: 2026-12-01 10:00:00.250000+00:00\n" +
		"    Kernel ended boot at: 2026-12-01 10:00:01.750000+00:00\n" +
		"    Kernel time to boot (seconds): 1.5\n" +
		"    Cloud-init activated by systemd at: 2026-12-01 10:00:04.250000+00:00\n" +
		"    Time between Kernel end boot and Cloud-init activation (seconds): 2.5\n" +
		"    Cloud-init start: 2026-12-01 10:00:04.250000+00:00\n"
	if err != nil || b.String() != want {
		t.Errorf("%v\n%s", err, b.String())
	}
	b.Reset()
	var ee *exitError
	if err := ciAnalyzeBoot(&b, analyze.BootTimes{EC2InitStart: k}); !errors.As(err, &ee) || ee.code != 1 || !strings.HasPrefix(b.String(), "Your Linux distro or container does not support") {
		t.Errorf("%v %q", err, b.String())
	}
}
