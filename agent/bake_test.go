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

// fakePinner is a Baker that pins: doc and lines are what Pin returns.
type fakePinner struct {
	fakeBaker
	doc    string
	lines  []string
	pinErr error
	pinned bool
}

func (f *fakePinner) Pin(_ context.Context, env *modules.Env, cfg *config.CloudConfig) ([]byte, []string, error) {
	f.pinned = env != nil && cfg != nil
	return []byte(f.doc), f.lines, f.pinErr
}

// TestBakePin: --pin writes the Pinner's document after the --config
// copies, so an instance of the image reads the pinned software key; a
// pin that fails or does not validate stops the bake before the clean; a
// Baker that cannot pin is refused before anything is done; a later bake
// without --pin removes the pins with the earlier copies.
func TestBakePin(t *testing.T) {
	reg, err := modules.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	const pinnedDoc = "#cloud-config\nsoftware:\n  items:\n    - {name: app, source: 'https://example.com/app-1.2.0', sha256: abc}\n"
	cases := []struct {
		name     string
		baker    Baker
		wantErr  string
		wantFile string // the pinned file's content; "" for none
		wantOut  string
	}{
		{name: "pinned", baker: &fakePinner{doc: pinnedDoc, lines: []string{"app 1.2.0"}},
			wantFile: strings.Replace(pinnedDoc, "\n", "\n# pinned by ec2init bake --pin: app 1.2.0\n", 1), wantOut: "pinned app 1.2.0\nimage cloud-config: " + ImageConfigDir + "/90-bake-pin.cfg (pinned versions)\n"},
		{name: "nothing to pin", baker: &fakePinner{doc: pinnedDoc},
			wantOut: "pin: no item resolved a version (version_from): nothing pinned\n"},
		{name: "unresolved", baker: &fakePinner{pinErr: errors.New("app: version_from: down")},
			wantErr: "bake: pin: app: version_from: down"},
		{name: "pin does not validate", baker: &fakePinner{doc: "#cloud-config\nsoftware: [\n", lines: []string{"app 1.2.0"}},
			wantErr: "bake: pin: the pinned cloud-config does not validate: cloud-config: " + ImageConfigDir + "/90-bake-pin.cfg"},
		{name: "baker cannot pin", baker: &fakeBaker{}, wantErr: "bake: --pin: the baker cannot pin versions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			cfgFile := filepath.Join(t.TempDir(), "sw.yaml")
			os.WriteFile(cfgFile, []byte("#cloud-config\nsoftware:\n  items:\n    - {name: app, version_from: 'https://example.com/LATEST'}\n"), 0o600)
			os.MkdirAll(filepath.Join(root, "var/log"), 0o755)
			os.WriteFile(filepath.Join(root, state.LogFile), []byte("log"), 0o600)
			var out strings.Builder
			err := Bake(context.Background(), BakeOptions{Root: root, Configs: []string{cfgFile}, Registry: reg,
				Baker: c.baker, Pin: true, Out: &out})
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), c.wantErr)) {
				t.Fatalf("Bake: %v, want %q", err, c.wantErr)
			}
			pinFile := filepath.Join(root, PinnedConfigFile)
			got, readErr := os.ReadFile(pinFile)
			if c.wantFile == "" && readErr == nil || c.wantFile != "" && string(got) != c.wantFile {
				t.Errorf("pinned file: %q %v", got, readErr)
			}
			_, logErr := os.Stat(filepath.Join(root, state.LogFile))
			if cleaned := os.IsNotExist(logErr); cleaned != (c.wantErr == "") {
				t.Errorf("log cleaned %v after %v", cleaned, err)
			}
			for _, l := range strings.Split(strings.TrimSpace(c.wantOut), "\n") {
				if l != "" && !strings.Contains(out.String(), l+"\n") {
					t.Errorf("out %q lacks %q", out.String(), l)
				}
			}
			if c.wantFile == "" {
				return
			}
			if fi, err := os.Stat(pinFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("pinned file mode: %v %v", fi.Mode(), err)
			}
			if pins, err := ReadPins(mustRoot(t, root)); err != nil || len(pins) != 1 || pins["app"] != "1.2.0" {
				t.Errorf("ReadPins: %v %v", pins, err)
			}
			// An instance of the image reads the pinned software key.
			cfg, err := LoadBakeConfig(context.Background(), BakeOptions{Root: root, Registry: reg})
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := cfg.Get("software"); !ok || !strings.HasSuffix(v.Source, "90-bake-pin.cfg") {
				t.Errorf("software from %q, want the pinned file", v.Source)
			}
			// A later bake with --config and without --pin: the pins go.
			if err := Bake(context.Background(), BakeOptions{Root: root, Configs: []string{cfgFile}, Registry: reg, Baker: &fakeBaker{}}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(pinFile); !os.IsNotExist(err) {
				t.Errorf("pins kept by a bake without --pin: %v", err)
			}
			if pins, err := ReadPins(mustRoot(t, root)); err != nil || pins != nil {
				t.Errorf("ReadPins after: %v %v", pins, err)
			}
		})
	}
}

// TestBakeKeepsImageConfig: a bake without --config reads the image's
// cloud-config, earlier bakes' copies included, and keeps them.
func TestBakeKeepsImageConfig(t *testing.T) {
	reg, err := modules.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	earlier := filepath.Join(root, ImageConfigDir, "90-bake-1-sw.cfg")
	os.MkdirAll(filepath.Dir(earlier), 0o755)
	os.WriteFile(earlier, []byte("#cloud-config\nsoftware: {items: []}\n"), 0o600)
	if err := Bake(context.Background(), BakeOptions{Root: root, Registry: reg, Baker: &fakeBaker{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(earlier); err != nil {
		t.Errorf("the image's cloud-config was removed: %v", err)
	}
}

func mustRoot(t *testing.T, dir string) *sys.Root {
	t.Helper()
	r, err := sys.NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
