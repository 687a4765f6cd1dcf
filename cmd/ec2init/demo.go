package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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
			"times: a first boot, a reboot, and a new instance launched from an AMI of it.",
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
	fmt.Fprintf(out, "Everything was written under a temporary --root; scripts got the instance facts as EC2_* variables.\n")
	fmt.Fprintf(out, "Try: ec2init imds serve, then ec2init boot --root DIR --endpoint http://127.0.0.1:1338\n")
	return nil
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
