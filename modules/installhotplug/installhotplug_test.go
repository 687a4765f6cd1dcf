package installhotplug

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/modules/modtest"
)

func TestInstallHotplug(t *testing.T) {
	for cfg, wantInfo := range map[string]int{
		"updates: {network: {when: [boot, hotplug]}}\n": 1,
		"updates: {network: {when: [boot]}}\n":          0,
		"updates: {}\n":                                 0,
	} {
		// The schema accepts it...
		if got := modtest.Diagnostics(t, cfg, InstallHotplug{}); got != "" {
			t.Errorf("%q: findings %q", cfg, got)
		}
		// ...and the run says one thing, installs nothing, warns nothing.
		e, _ := modtest.Env(t)
		core, logs := observer.New(zap.DebugLevel)
		e.Log = zap.New(core)
		if err := (InstallHotplug{}).Run(context.Background(), e, modtest.Config(t, cfg)); err != nil {
			t.Fatalf("%q: %v", cfg, err)
		}
		if n := logs.FilterLevelExact(zapcore.InfoLevel).Len(); n != wantInfo {
			t.Errorf("%q: %d info lines, want %d: %v", cfg, n, wantInfo, logs.All())
		}
		if n := logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }).Len(); n != 0 {
			t.Errorf("%q: warnings: %v", cfg, logs.All())
		}
		if got := modtest.Get(t, e, "/etc/udev/rules.d/90-cloud-init-hook-hotplug.rules"); got != "<absent>" {
			t.Errorf("a udev rule was written: %q", got)
		}
	}
}

func TestSchema(t *testing.T) {
	for doc, want := range map[string]string{
		"updates: {network: {when: [sometimes]}}\n": "u.yaml:1:28: error: updates.network.when[0]: expected one of boot-new-instance",
		"updates: {network: {}}\n":                  `u.yaml:1:20: error: updates.network: missing required key "when"`,
		"updates: {network: {when: hotplug}}\n":     "u.yaml:1:27: error: updates.network.when: expected list",
	} {
		if got := modtest.Diagnostics(t, doc, InstallHotplug{}); !strings.Contains(got, want) {
			t.Errorf("%q: diagnostics %q, want %q", doc, got, want)
		}
	}
}
