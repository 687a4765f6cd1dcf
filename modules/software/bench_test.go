package software

import (
	"context"
	"os"
	"testing"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// BenchmarkFetchVerifyInstall is the boot path of one 256 MiB artifact:
// downloaded from a loopback HTTPS origin into an empty cache, hashed in
// the same pass, and installed as a file (one more copy). Compare with
// `curl -o /dev/null` of the same file (bench/).
func BenchmarkFetchVerifyInstall(b *testing.B) {
	const size = 256 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	o := newOrigin(b)
	url := o.Put("/big", body)
	root, err := sys.NewRoot(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	env := &modules.Env{Root: root, Runner: &sys.Runner{Root: root}, Log: zap.NewNop(), Instance: &imds.Instance{InstanceID: "i-bench"},
		State: state.NewModuleStates(root, "i-bench")}
	ca := o.installCA(b, root)
	cfg := modtest.Config(b, bootConfig(ca, `
- name: big
  frequency: always
  source: `+url+`
  sha256: `+sha256hex(body)+`
  install: {type: file, dest: /opt/big}
`))
	m, _ := module()
	cache, _ := root.Path(DefaultCacheDir)
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(cache); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := m.Run(context.Background(), env, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
