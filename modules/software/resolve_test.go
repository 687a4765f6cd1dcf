package software

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/modtest"
)

// TestResolveForPin: bake --pin's module side for boot items. Resolve
// resolves and verifies a boot item's version_from (installing nothing,
// leaving no artifact in the image's cache), Pin freezes it; a boot item
// whose version cannot be resolved is named in the error.
func TestResolveForPin(t *testing.T) {
	o := newOrigin(t)
	env := newEnv(t)
	ca := o.installCA(t, env.Root)
	v3 := []byte("agent 3.1.0")
	o.Put("/agent/LATEST", []byte("3.1.0\n"))
	o.Put("/agent/agent-3.1.0", v3)
	o.Put("/agent/agent-3.1.0.sha256", []byte(sha256hex(v3)+"  agent-3.1.0\n"))
	cfg := modtest.Config(t, bootConfig(ca, `
- name: agent
  version_from: `+o.URL+`/agent/LATEST
  source: `+o.URL+`/agent/agent-{version}
  sha256_url: `+o.URL+`/agent/agent-{version}.sha256
  install: {type: file, dest: /opt/agent/agent}
- name: fixed
  source: `+o.URL+`/agent/agent-3.1.0
  sha256: `+sha256hex(v3)+`
  install: {type: file, dest: /opt/fixed}
`))
	m, _ := module()
	results, err := m.Resolve(context.Background(), env, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Name != "agent" || results[0].Version != "3.1.0" || results[0].Checksum != "sha256:"+sha256hex(v3) {
		t.Fatalf("results %+v", results)
	}
	if ok, _ := env.Root.Exists("/opt/agent/agent"); ok {
		t.Error("Resolve installed the boot item")
	}
	cacheParent, _ := env.Root.Path("/var/cache/ec2init")
	filepath.WalkDir(cacheParent, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("artifact left in the image: %s", p)
		}
		return nil
	})
	if left, _ := filepath.Glob(filepath.Join(cacheParent, ".software-pin-*")); len(left) > 0 {
		t.Errorf("scratch cache left: %q", left)
	}
	pinned, err := Pin(cfg, results)
	if err != nil {
		t.Fatal(err)
	}
	pc, _, err := Parse(modtest.Config(t, string(pinned)))
	if err != nil {
		t.Fatal(err)
	}
	if it := pc.Items[0]; it.VersionFrom != "" || it.Source != o.URL+"/agent/agent-3.1.0" || it.SHA256 != sha256hex(v3) || it.Policy != PolicyBoot {
		t.Errorf("pinned agent %+v\n%s", it, pinned)
	}

	o.Put("/gone/LATEST", []byte("\n"))
	_, err = m.Resolve(context.Background(), env, modtest.Config(t, bootConfig(ca, `
- name: gone
  version_from: `+o.URL+`/gone/LATEST
  source: `+o.URL+`/gone/gone-{version}
  sha256_url: `+o.URL+`/gone/gone-{version}.sha256
  install: {type: file, dest: /opt/gone}
`)))
	if err == nil || !strings.HasPrefix(err.Error(), "gone: version_from: ") {
		t.Errorf("err = %v", err)
	}
	if _, statErr := os.Stat(cacheParent); statErr != nil {
		t.Error(statErr)
	}
}
