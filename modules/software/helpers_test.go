package software

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap/zaptest"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// newEnv is an Env over a fresh temporary root, as instance i-0abc.
func newEnv(t *testing.T) *modules.Env {
	t.Helper()
	env, _ := modtest.Env(t)
	asInstance(env, "i-0abc")
	env.Log = zaptest.NewLogger(t)
	env.Runner.Log = env.Log
	return env
}

// asInstance makes env a boot's of instance id: its Instance and the
// module stores in its state directory, as agent.NewModuleEnv sets them.
func asInstance(env *modules.Env, id string) {
	env.Instance = &imds.Instance{InstanceID: id}
	env.State = state.NewModuleStates(env.Root, id)
}

// module is the module with a recorder for systemd and quick retries.
func module() (Software, *sys.RecordingServices) {
	rec := &sys.RecordingServices{}
	return Software{Services: rec, LockBase: time.Millisecond}, rec
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha512hex(b []byte) string {
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:])
}

// entry is one tarball member.
type entry struct {
	name     string
	typ      byte // tar.TypeReg when 0
	body     string
	linkname string
	mode     int64
}

func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: e.mode, ModTime: mtime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarGz(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(tarBytes(t, entries))
	zw.Close()
	return b.Bytes()
}

func tarZst(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tarBytes(t, entries))
	zw.Close()
	return b.Bytes()
}

// writeHost writes a file under the root (test setup).
func writeHost(t testing.TB, root *sys.Root, p string, data []byte) string {
	t.Helper()
	full, err := root.Path(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return full
}

func readHost(t testing.TB, root *sys.Root, p string) string {
	t.Helper()
	b, err := root.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// origin is testkit's loopback HTTPS origin; a test installs its CA under
// the test's root.
type origin struct{ *testkit.Origin }

func newOrigin(t testing.TB) origin {
	t.Helper()
	return origin{testkit.NewOrigin(t, nil)}
}

// installCA writes the origin's CA under the root and returns its host path.
func (o origin) installCA(t testing.TB, root *sys.Root) string {
	writeHost(t, root, "/etc/ec2init/test-ca.pem", o.CAPEM())
	return "/etc/ec2init/test-ca.pem"
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad) + "\n"
}
