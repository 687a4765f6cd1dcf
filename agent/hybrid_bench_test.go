package agent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/testkit"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
	"github.com/ec2init/ec2init/modules/software"
)

// BenchmarkBootSoftware is the Hybrid AMI's trade, measured: the first
// boot of a new instance (all stages, one agent.Boot) whose image's
// cloud-config has one software item of N MiB, served by a loopback
// HTTPS origin (private CA, trusted through the item list's ca_file).
// "fetched" (policy: boot) downloads, verifies and installs it at each
// boot; "baked" (policy: bake) was installed once by agent.Bake into a
// template image, and each boot of a copy only verifies it against the
// manifest (verify: quick, a stat). Each op boots a fresh copy of the
// image, made with the timer stopped. The item is incompressible, so the
// origin serves N MiB. MiB-fetched/op is what the origin served per boot:
// N for fetched, 0 for baked (asserted, with the item's recorded action).
func BenchmarkBootSoftware(b *testing.B) {
	for _, mib := range []int{1, 16, 64} {
		for _, policy := range []string{"fetched", "baked"} {
			b.Run(fmt.Sprintf("%dMiB/%s", mib, policy), func(b *testing.B) {
				benchBootSoftware(b, mib, policy == "baked")
			})
		}
	}
}

func benchBootSoftware(b *testing.B, mib int, baked bool) {
	ctx := context.Background()
	size := mib << 20
	artifact := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(mib)}).Read(artifact) //nolint:errcheck // never fails
	sum := sha256.Sum256(artifact)
	origin := testkit.NewOrigin(b, nil)
	const artPath, dest, caFile = "/runtime.bin", "/srv/runtime/runtime.bin", "/etc/ec2init/bench-ca.pem"
	policy, wantAction := "boot", software.ActionInstalled
	if baked {
		policy, wantAction = "bake", software.ActionVerified
	}
	// The owner by id: the roots have no /etc/passwd.
	doc := fmt.Sprintf("#cloud-config\nsoftware:\n  ca_file: %s\n  items:\n    - name: runtime\n      policy: %s\n"+
		"      source: %s\n      sha256: %s\n      install: {type: file, dest: %s, owner: '%d:%d'}\n",
		caFile, policy, origin.Put(artPath, artifact), hex.EncodeToString(sum[:]), dest, os.Getuid(), os.Getgid())

	// The image: the CA and the item list in its cloud-config, the item
	// baked into it for "baked" (agent.Bake installs the list as it does
	// for `ec2init bake --config`).
	parent := b.TempDir()
	image := filepath.Join(parent, "image")
	origin.WriteCA(b, filepath.Join(image, caFile))
	cfgFile := filepath.Join(parent, "software.yaml")
	if err := os.WriteFile(cfgFile, []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	if baked {
		err := agent.Bake(ctx, agent.BakeOptions{Root: image, Configs: []string{cfgFile},
			Registry: all.Registry(), Baker: &benchBaker{}, Version: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if n := origin.Count(artPath); n != 1 {
			b.Fatalf("the bake made %d requests for the artifact, want 1", n)
		}
	} else {
		p := filepath.Join(image, agent.ImageConfigDir, "90-bench-software.cfg")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			b.Fatal(err)
		}
	}

	sim, url := imdssim.Start(b, imdssim.Options{})
	sim.SetUserData(nil) // the image's cloud-config has the item list
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		b.Fatal(err)
	}
	before := origin.Count(artPath)
	i := 0
	b.ReportAllocs()
	if !baked {
		b.SetBytes(int64(size))
	}
	for b.Loop() {
		b.StopTimer()
		i++
		root := filepath.Join(parent, fmt.Sprintf("root%d", i))
		if err := copyTree(image, root); err != nil {
			b.Fatal(err)
		}
		// The image's blocks are on disk before the instance boots: else
		// the boot's one syncfs would write the copy too.
		if err := syncFS(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := agent.Boot(ctx, agent.Options{
			Root: root, IMDS: client, BootID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			IdentifyDeadline: 10 * time.Second, Registry: all.Registry(),
		})
		b.StopTimer()
		if err != nil || st.State != state.StateDone || len(st.Errors)+len(st.Degraded) > 0 {
			b.Fatalf("boot %d: %s %v %q %q", i, st.State, err, st.Errors, st.Degraded)
		}
		// What the boot did with the item, so the benchmark cannot
		// measure something else: installed (fetched) or verified
		// (baked), and the installed file whole.
		if got := softwareAction(b, root, st.InstanceID, "runtime"); got != wantAction {
			b.Fatalf("boot %d: the item was %q, want %q", i, got, wantAction)
		}
		if fi, err := os.Stat(filepath.Join(root, dest)); err != nil || fi.Size() != int64(size) {
			b.Fatalf("boot %d: %s: %v (%v)", i, dest, fi, err)
		}
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	fetched := origin.Count(artPath) - before
	switch {
	case baked && fetched != 0:
		b.Fatalf("baked: the boots made %d requests for the artifact, want none", fetched)
	case !baked && fetched != i:
		b.Fatalf("fetched: the boots made %d requests for the artifact, want %d", fetched, i)
	}
	b.ReportMetric(float64(fetched*mib)/float64(i), "MiB-fetched/op")
}

// softwareAction is the action the software module recorded for item at
// the boot of instance id (software.json in its state directory).
func softwareAction(b *testing.B, root, id, item string) string {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(root, "var/lib/ec2init/instances", id, "software.json"))
	if err != nil {
		b.Fatal(err)
	}
	var rec state.ItemReport[software.ItemResult]
	if err := json.Unmarshal(data, &rec); err != nil {
		b.Fatal(err)
	}
	for _, r := range rec.Items {
		if r.Name == item {
			return r.Action
		}
	}
	return ""
}

// benchBaker is the software module as agent.Bake's Baker, as `ec2init
// bake` wires it (without its progress bar and summary).
type benchBaker struct{ man *software.Manifest }

func (bb *benchBaker) Bake(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) (bool, error) {
	man, _, err := software.Software{}.Bake(ctx, env, cfg, "bench")
	if errors.Is(err, software.ErrNothingToBake) {
		return true, err
	}
	bb.man = man
	return false, err
}

func (bb *benchBaker) Record(root *sys.Root) error { return software.WriteManifest(root, bb.man) }

// copyTree copies the image at src to dst as a new instance's disk is a
// copy of its AMI: modes and modification times kept (a quick verify of
// a baked item compares the mtime), symlinks as symlinks.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(to, 0o700); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			if err := copyFile(p, to); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: not a file, directory or symlink", path.Join("/", filepath.ToSlash(rel)))
		}
		if err := os.Chmod(to, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		// A directory's mtime changes as its entries are copied: set
		// again after the walk would be exact, but no check reads it.
		return os.Chtimes(to, info.ModTime(), info.ModTime())
	})
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
