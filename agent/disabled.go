package agent

import (
	"os"
	"slices"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// Disabled says whether ec2init is switched off on the host under root,
// and by what: DisabledFile, cloud-init's CloudInitDisabledFile,
// ec2init=disabled or cloud-init=disabled as a word of the kernel command
// line (cmdline: /proc/cmdline's contents), or KERNEL_CMDLINE set to
// cloud-init=disabled in the environment (how cloud-init is switched off
// in containers). The units' Condition lines test the same, so a unit that
// did not start and Disabled agree; "" when nothing switches it off.
func Disabled(root *sys.Root, cmdline string, getenv func(string) string) string {
	for _, f := range []string{DisabledFile, CloudInitDisabledFile} {
		if exists(root, f) {
			return f
		}
	}
	words := strings.Fields(cmdline)
	for _, w := range []string{"ec2init=disabled", "cloud-init=disabled"} {
		if slices.Contains(words, w) {
			return w + " on the kernel command line"
		}
	}
	if getenv != nil && getenv("KERNEL_CMDLINE") == "cloud-init=disabled" {
		return "KERNEL_CMDLINE=cloud-init=disabled"
	}
	return ""
}

// HostDisabled is Disabled for the running system's kernel command line
// and environment.
func HostDisabled(root *sys.Root) string {
	cmdline, _ := os.ReadFile("/proc/cmdline")
	return Disabled(root, string(cmdline), os.Getenv)
}
