package agent_test

import (
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
)

// TestPlanPlacesScripts: the plan shows the script slots where they run,
// in modules/all's list and in a registry that lists no slot.
func TestPlanPlacesScripts(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  *modules.Registry
		want map[modules.Stage]string
	}{
		{"all", all.Registry(), map[modules.Stage]string{
			modules.StageLocal: "boothook",
			modules.StageFinal: "software write_files_deferred puppet chef ansible salt_minion scripts_per_once scripts_per_boot scripts_per_instance scripts_user runcmd ssh_authkey_fingerprints keys_to_console install_hotplug phone_home disable_ec2_metadata final_message power_state_change",
		}},
		{"no slots", registry(t, fakeModule{name: "late", stage: modules.StageFinal}, fakeModule{name: "net", stage: modules.StageNetwork}), map[modules.Stage]string{
			modules.StageLocal:   "boothook",
			modules.StageNetwork: "net",
			modules.StageFinal:   "scripts_per_once scripts_per_boot scripts_per_instance scripts_user late",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[modules.Stage][]string{}
			for _, it := range agent.Plan(tc.reg) {
				if it.Order != len(got[it.Stage])+1 {
					t.Errorf("%s: order %d", it.Name, it.Order)
				}
				got[it.Stage] = append(got[it.Stage], it.Name)
			}
			for st, want := range tc.want {
				if g := strings.Join(got[st], " "); g != want {
					t.Errorf("stage %s: %s, want %s", st, g, want)
				}
			}
		})
	}
}
