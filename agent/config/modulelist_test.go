package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestModuleList(t *testing.T) {
	c := Merge(mustDoc(t, "u", "cloud_final_modules:\n  - [scripts-user, always]\n  - [users-groups, once]\n  - [ssh, once-per-instance]\n  - {name: runcmd, frequency: per-instance}\n  - final_message\n  - [keys, sometimes]\n  - {frequency: always}\n"))
	entries, warns, ok := c.ModuleList("cloud_final_modules")
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s/%s", e.Name, e.Frequency))
	}
	want := "scripts_user/always users_groups/once ssh/per-instance runcmd/per-instance final_message/ keys/"
	if !ok || strings.Join(got, " ") != want {
		t.Errorf("entries %q, want %q", strings.Join(got, " "), want)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], "u:7: cloud_final_modules[5]: unknown frequency") || !strings.Contains(warns[1], "not a module name") {
		t.Errorf("warnings %q", warns)
	}
	if _, _, ok := c.ModuleList("cloud_init_modules"); ok {
		t.Error("an unset list reads as set")
	}
}
