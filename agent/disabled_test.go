package agent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/sys"
)

// TestDisabled: ec2init's off switches and cloud-init's, as the units'
// Condition lines test them.
func TestDisabled(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		cmdline string
		env     map[string]string
		want    string
	}{
		{name: "nothing", cmdline: "BOOT_IMAGE=/vmlinuz root=UUID=x ro console=ttyS0"},
		{name: "ec2init's file", file: agent.DisabledFile, want: agent.DisabledFile},
		{name: "cloud-init's file", file: agent.CloudInitDisabledFile, want: agent.CloudInitDisabledFile},
		{name: "ec2init on the command line", cmdline: "ro ec2init=disabled quiet", want: "ec2init=disabled on the kernel command line"},
		{name: "cloud-init on the command line", cmdline: "ro cloud-init=disabled", want: "cloud-init=disabled on the kernel command line"},
		// A whole word only, as systemd's ConditionKernelCommandLine.
		{name: "not a word of its own", cmdline: "ro xcloud-init=disabled cloud-init=disabledx"},
		{name: "container environment", env: map[string]string{"KERNEL_CMDLINE": "cloud-init=disabled"}, want: "KERNEL_CMDLINE=cloud-init=disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.file != "" {
				p := filepath.Join(dir, tt.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			root, err := sys.NewRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := agent.Disabled(root, tt.cmdline, func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("Disabled = %q, want %q", got, tt.want)
			}
		})
	}
}
