package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
)

// TestUnitsOffSwitches: every ec2init service stops at ec2init's off
// switches and at cloud-init's (no container needed: the unit files).
func TestUnitsOffSwitches(t *testing.T) {
	conditions := []string{
		"ConditionPathExists=!" + agent.DisabledFile,
		"ConditionKernelCommandLine=!ec2init=disabled",
		"ConditionPathExists=!" + agent.CloudInitDisabledFile,
		"ConditionKernelCommandLine=!cloud-init=disabled",
		"ConditionEnvironment=!KERNEL_CMDLINE=cloud-init=disabled",
	}
	units, _ := filepath.Glob(filepath.Join(repoRoot(), "packaging/systemd/ec2init*.service"))
	if len(units) != 5 {
		t.Fatalf("units %q", units)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for _, c := range conditions {
			if !slices.Contains(lines, c) {
				t.Errorf("%s lacks %s", filepath.Base(u), c)
			}
		}
	}
}

// TestUnitAliasesAgree: the postinst links the cloud-init unit names
// `ec2init migrate` links (agent.CloudInitUnitAliases), to the same units,
// and the preremove removes each.
func TestUnitAliasesAgree(t *testing.T) {
	post, err := os.ReadFile(filepath.Join(repoRoot(), "packaging/scripts/postinstall.sh"))
	if err != nil {
		t.Fatal(err)
	}
	pre, err := os.ReadFile(filepath.Join(repoRoot(), "packaging/scripts/preremove.sh"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)cloud_init_units="([^"]*)"`).FindSubmatch(post)
	if block == nil {
		t.Fatal("no cloud_init_units in postinstall.sh")
	}
	var want []string
	for _, a := range agent.CloudInitUnitAliases {
		want = append(want, a.Name+":"+a.Unit)
		if !strings.Contains(string(pre), a.Name) {
			t.Errorf("preremove.sh does not remove %s", a.Name)
		}
		if _, err := os.Stat(filepath.Join(repoRoot(), "packaging/systemd", a.Unit)); err != nil {
			t.Errorf("%s -> %s: %v", a.Name, a.Unit, err)
		}
	}
	got := strings.Fields(string(block[1]))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("postinstall.sh links %q\nmigrate links %q", got, want)
	}
}
