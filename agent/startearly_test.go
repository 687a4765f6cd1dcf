package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
)

// startingModule is a fakeModule that can begin early (modules.Starter):
// its Start, its wait and its Run each append a line to out/order.
type startingModule struct{ fakeModule }

func (m startingModule) Start(_ context.Context, env *modules.Env, _ *config.CloudConfig) func() {
	if err := env.Root.AppendFile("/out/order", []byte(m.name+" start\n"), 0o644); err != nil {
		return nil
	}
	return func() { env.Root.AppendFile("/out/order", []byte(m.name+" waited\n"), 0o644) }
}

func (m startingModule) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	env.Root.AppendFile("/out/order", []byte(m.name+" run\n"), 0o644)
	return m.fakeModule.Run(ctx, env, cfg)
}

// orderedModule appends its run to out/order.
type orderedModule struct{ fakeModule }

func (m orderedModule) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	env.Root.AppendFile("/out/order", []byte(m.name+" run\n"), 0o644)
	return m.fakeModule.Run(ctx, env, cfg)
}

// TestStartEarly: a Starter module due to run is started before the
// stage's first module and waited for before its own Run; on a reboot,
// with the module done for this instance, it is not started at all.
func TestStartEarly(t *testing.T) {
	f := newFixture(t, "")
	reg := registry(t,
		orderedModule{fakeModule{name: "first", stage: modules.StageNetwork}},
		startingModule{fakeModule{name: "keys", stage: modules.StageNetwork}},
	)
	boot := f.bootWith(reg, f.options)
	boot(boot1)
	want := "keys start\nfirst run\nkeys waited\nkeys run\n"
	if got := readOrder(t, f); got != want {
		t.Errorf("first boot order:\n%s\nwant:\n%s", got, want)
	}
	boot(boot2)
	if got := readOrder(t, f); got != want {
		t.Errorf("a reboot started or ran the per-instance module again:\n%s", got)
	}
}

func readOrder(t *testing.T, f *fixture) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, "out", "order"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
