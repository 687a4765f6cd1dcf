package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// fakeBaker records what agent.Bake asked of it.
type fakeBaker struct {
	skip     bool
	err      error
	baked    bool
	recorded bool
}

func (f *fakeBaker) Bake(_ context.Context, env *modules.Env, cfg *config.CloudConfig) (bool, error) {
	f.baked = env != nil && cfg != nil
	return f.skip, f.err
}

func (f *fakeBaker) Record(*sys.Root) error { f.recorded = true; return nil }

func TestBakeWorkflow(t *testing.T) {
	emptyReg, err := modules.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name         string
		baker        fakeBaker
		wantErr      string
		wantRecorded bool
	}{
		{"baked", fakeBaker{}, "", true},
		{"nothing to bake", fakeBaker{skip: true, err: errors.New("nothing")}, "nothing", false},
		{"failed", fakeBaker{err: errors.New("boom")}, "bake: boom", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			cfgFile := filepath.Join(t.TempDir(), "sw.yaml")
			os.WriteFile(cfgFile, []byte("#cloud-config\nfrobnicate: 1\n"), 0o600)
			os.MkdirAll(filepath.Join(root, "var/log"), 0o755)
			os.WriteFile(filepath.Join(root, state.LogFile), []byte("log"), 0o600)
			var out, console strings.Builder
			b := c.baker
			err := Bake(context.Background(), BakeOptions{Root: root, Configs: []string{cfgFile}, Registry: emptyReg,
				Baker: &b, Out: &out, Console: &console})
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || err.Error() != c.wantErr) {
				t.Fatalf("Bake: %v, want %q", err, c.wantErr)
			}
			if !b.baked || b.recorded != c.wantRecorded {
				t.Errorf("baked %v recorded %v", b.baked, b.recorded)
			}
			_, logErr := os.Stat(filepath.Join(root, state.LogFile))
			if cleaned := os.IsNotExist(logErr); cleaned != c.wantRecorded {
				t.Errorf("log cleaned %v, want %v", cleaned, c.wantRecorded)
			}
			if !strings.Contains(console.String(), "frobnicate") {
				t.Errorf("warnings not on the console: %q", console.String())
			}
			if c.wantRecorded && !strings.Contains(out.String(), "image cloud-config: "+ImageConfigDir+"/90-bake-1-sw.cfg") {
				t.Errorf("out: %q", out.String())
			}
		})
	}
}

func TestLoadCloudConfigPolicy(t *testing.T) {
	reg, err := modules.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	srcs := []ConfigSource{{Name: "a", Body: []byte("x: [\n")}, {Name: "b", Body: []byte("y: 1\n")}}
	if _, err := LoadCloudConfig(srcs, ConfigPolicy{Registry: reg, Strict: true}); err == nil || !strings.HasPrefix(err.Error(), "cloud-config: a:") {
		t.Errorf("strict: %v", err)
	}
	loaded, err := LoadCloudConfig(srcs, ConfigPolicy{Registry: reg})
	if err != nil || len(loaded.Docs) != 1 || len(loaded.Checked) != 2 {
		t.Fatalf("lenient: %+v %v", loaded, err)
	}
	if errs, _ := loaded.Checked[0].Problems(); len(errs) != 1 || !strings.HasPrefix(errs[0], "cloud-config: a:") {
		t.Errorf("problems: %q", errs)
	}
}

func TestReadStatusNone(t *testing.T) {
	bs, err := ReadStatus(Options{Root: t.TempDir(), BootID: "00000000-0000-4000-8000-00000000000a"})
	if err != nil || bs.Recorded() || bs.Current {
		t.Errorf("ReadStatus of an empty root: %+v %v", bs, err)
	}
}
