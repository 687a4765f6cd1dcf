package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
)

// demoUserData is MIME multipart user data as `cloud-init devel make-mime`
// writes it: a script run once per instance, a script run every boot, and
// a cloud-config. The scripts write under $EC2INIT_ROOT, so the demo never
// touches the machine it runs on.
const demoUserData = `Content-Type: multipart/mixed; boundary="===============demo=="
MIME-Version: 1.0

--===============demo==
Content-Type: text/x-shellscript; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: attachment; filename="setup.sh"

#!/bin/sh
# Runs once per instance, as root, non-interactively.
echo "setup.sh: configuring $EC2_INSTANCE_ID in $EC2_AVAILABILITY_ZONE (subnet $EC2_SUBNET_ID, $EC2_LOCAL_IPV4)"
echo "$EC2_INSTANCE_ID" >> "$EC2INIT_ROOT/var/tmp/setup-runs"

--===============demo==
Content-Type: text/x-shellscript-per-boot; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: attachment; filename="every-boot.sh"

#!/bin/sh
echo "every-boot.sh: boot of $EC2_INSTANCE_ID"

--===============demo==
Content-Type: text/cloud-config; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: attachment; filename="config.yaml"

#cloud-config
write_files:
  - path: /etc/motd
    content: "Configured by ec2init\n"
runcmd:
  - [echo, hello]

--===============demo==--
`

func newDemoCommand(e *env) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show ec2init at work against the built-in IMDS simulator (no AWS account needed)",
		Long: "Start the IMDS simulator with sample user data, then boot a temporary root three\n" +
			"times: a first boot, a reboot, and a new instance launched from an AMI of it. Then\n" +
			"the Hybrid AMI: bake one software item into another root from an artifact origin on\n" +
			"loopback, and boot an instance of it that fetches only the boot-time item.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), e, cmd.OutOrStdout(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary root to look at afterwards")
	return cmd
}

func runDemo(ctx context.Context, e *env, out io.Writer, keep bool) error {
	tree := imdssim.DefaultTree()
	tree.SetUserData([]byte(demoUserData))
	sim := imdssim.New(imdssim.Options{Tree: tree})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: start the IMDS simulator: %w", err)
	}
	defer sim.Close()
	root, err := os.MkdirTemp("", "ec2init-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "(keeping the demo root %s)\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/tmp"), 0o755); err != nil {
		return err
	}

	demo := *e
	demo.root, demo.endpoint = root, url
	if demo.logLevel == "info" {
		demo.logLevel = "warn" // the report below says what happened
	}
	fmt.Fprintf(out, "== The IMDS simulator serves an example instance on %s\n\n", url)
	if err := runMetadata(ctx, &demo, []string{"--facts"}, out); err != nil {
		return err
	}

	steps := []struct {
		title, bootID string
		before        func()
	}{
		{"First boot of instance i-0123456789abcdef0", "00000000-0000-4000-8000-000000000001", nil},
		{"Reboot of the same instance", "00000000-0000-4000-8000-000000000002", nil},
		{"A new instance launched from an AMI of this one", "00000000-0000-4000-8000-000000000003", func() {
			sim.Set("meta-data/instance-id", "i-0fedcba9876543210")
			sim.Set("dynamic/instance-identity/document", strings.ReplaceAll(mustGet(tree, "dynamic/instance-identity/document"), "i-0123456789abcdef0", "i-0fedcba9876543210"))
		}},
	}
	for i, step := range steps {
		if step.before != nil {
			step.before()
		}
		fmt.Fprintf(out, "\n== %d. %s (boot id ...%s)\n", i+1, step.title, step.bootID[len(step.bootID)-4:])
		demo.bootID = step.bootID
		var console strings.Builder
		st, err := runStages(ctx, &demo, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &console)
		if err != nil {
			return err
		}
		report(out, st, console.String())
	}
	runs, _ := os.ReadFile(filepath.Join(root, "var/tmp/setup-runs"))
	fmt.Fprintf(out, "\nsetup.sh ran for: %s\n", strings.Join(strings.Fields(string(runs)), ", "))
	if motd, err := os.ReadFile(filepath.Join(root, "etc/motd")); err == nil {
		fmt.Fprintf(out, "write_files wrote /etc/motd: %s", motd)
	}
	if err := runHybridDemo(ctx, &demo, sim, out, keep); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nEverything was written under temporary --roots; scripts got the instance facts as EC2_* variables.\n")
	fmt.Fprintf(out, "Try: ec2init imds serve, then ec2init boot --root DIR --endpoint http://127.0.0.1:1338\n")
	return nil
}

// runHybridDemo is the Hybrid AMI's trade, measured: an image bakes a
// large runtime (policy: bake) from an artifact origin on loopback, then
// an instance of it fetches only the small application (policy: boot) at
// its first boot. The origin counts what it served.
func runHybridDemo(ctx context.Context, e *env, sim *imdssim.Server, out io.Writer, keep bool) error {
	artifacts := map[string][]byte{
		"/runtime.bin": demoArtifact("runtime", 8<<20),
		"/app.bin":     demoArtifact("app", 1<<20),
	}
	var mu sync.Mutex
	served := map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: artifact origin: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := artifacts[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		served[r.URL.Path]++
		mu.Unlock()
		http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(body))
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	defer srv.Close()
	origin := "http://" + ln.Addr().String()

	root, err := os.MkdirTemp("", "ec2init-demo-hybrid-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "(keeping the Hybrid AMI demo root %s)\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	cfgDir, err := os.MkdirTemp("", "ec2init-demo-cfg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cfgDir)
	item := func(name, policy, file, dest string) string {
		sum := sha256.Sum256(artifacts[file])
		return fmt.Sprintf("    - name: %s\n      policy: %s\n      source: %s%s\n      sha256: %s\n      allow_insecure: true  # the demo's origin is loopback http\n"+
			"      install: {type: file, dest: %s}\n", name, policy, origin, file, hex.EncodeToString(sum[:]), dest)
	}
	cfg := filepath.Join(cfgDir, "software.yaml")
	doc := "#cloud-config\nsoftware:\n  items:\n" + item("runtime", "bake", "/runtime.bin", "/opt/runtime/runtime.bin") +
		item("app", "boot", "/app.bin", "/srv/app/app.bin")
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n== 4. The Hybrid AMI: bake the runtime (8 MiB), fetch the app (1 MiB) at boot, from an artifact origin on %s\n", origin)
	hybrid := *e
	hybrid.root = root
	start := time.Now()
	var bakeOut strings.Builder
	if err := runBake(ctx, &hybrid, bakeOptions{configs: []string{cfg}}, &bakeOut, io.Discard); err != nil {
		return fmt.Errorf("demo: bake: %w\n%s", err, bakeOut.String())
	}
	bakeTook := time.Since(start)
	mu.Lock()
	fmt.Fprintf(out, "   bake (on the build instance): %s; the origin served runtime.bin %d time(s), app.bin %d\n",
		bakeTook.Round(time.Millisecond), served["/runtime.bin"], served["/app.bin"])
	mu.Unlock()

	sim.SetUserData(nil) // the image's cloud-config has the software list
	hybrid.bootID = "00000000-0000-4000-8000-000000000004"
	var console strings.Builder
	start = time.Now()
	st, err := runStages(ctx, &hybrid, bootOptions{stage: "all", identifyDeadline: 10 * time.Second}, &console)
	if err != nil {
		return err
	}
	bootTook := time.Since(start)
	mu.Lock()
	fmt.Fprintf(out, "   first boot of an instance of the image: %s (%s); the origin served app.bin %d time(s), runtime.bin %d more\n",
		bootTook.Round(time.Millisecond), st.State, served["/app.bin"], served["/runtime.bin"]-1)
	mu.Unlock()
	for _, d := range append(st.Errors, st.Degraded...) {
		fmt.Fprintf(out, "   degraded: %s\n", d)
	}
	fmt.Fprintf(out, "   ec2init analyze software:\n")
	c, _ := softwareCost(root, st)
	var table strings.Builder
	if err := printSoftwareCost(&table, c); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
		fmt.Fprintf(out, "   | %s\n", line)
	}
	return nil
}

// demoArtifact is n bytes that stand for a build artifact (the same at
// every run, so its checksum is too).
func demoArtifact(name string, n int) []byte {
	line := []byte(fmt.Sprintf("%s: demo artifact of ec2init's Hybrid AMI demo\n", name))
	return bytes.Repeat(line, n/len(line)+1)[:n]
}

func report(out io.Writer, st state.Status, console string) {
	for _, stage := range st.Stages {
		for _, m := range stage.Modules {
			verb := map[string]string{"ok": "ran", "skipped": "skipped (already ran)", "failed": "FAILED", "interrupted": "interrupted earlier, not re-run"}[m.Outcome]
			fmt.Fprintf(out, "   %-36s %-13s %s\n", m.Name, m.Frequency, verb)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(console), "\n") {
		if line != "" && !strings.HasPrefix(line, "== ec2init:") {
			fmt.Fprintf(out, "   | %s\n", line)
		}
	}
	fmt.Fprintf(out, "   status: %s (%d stages, %.0f ms)\n", st.State, len(st.Stages), st.FinishedAt.Sub(st.StartedAt).Seconds()*1000)
	for _, d := range st.Degraded {
		fmt.Fprintf(out, "   degraded: %s\n", d)
	}
	for _, d := range st.Errors {
		fmt.Fprintf(out, "   error: %s\n", d)
	}
}

func mustGet(t *imdssim.Tree, path string) string {
	v, _, _ := t.Get(path)
	return v
}
