// Package rootescape checks that a boot and `clean` under a root prefix
// never read, write or remove anything outside it, whatever symlinks the
// tree under the prefix holds: a mounted image is not trusted.
package rootescape

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules/all"
)

const bootID = "00000000-0000-4000-8000-000000000001"

// sentinel fills dir with files named like what ec2init writes or removes
// (host keys, a machine id, state directories, logs), so that a write or a
// removal that follows a link into it changes something the hash sees.
func sentinel(t *testing.T, dir string) {
	t.Helper()
	files := []string{
		"machine-id", "ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key",
		"ec2init.log", "ec2init-output.log", "status.json", "result.json", "boot.lock",
		"old-boot/transition.json", "ec2init/data/instance-id", "ec2init/boots/old/transition.json",
		"data/instance-id", "i-0123456789abcdef0/boot-finished", "ec2init.conf", "cloud/instance",
		"seed/user-data", "bake.json", "sem/precious.once", "records/precious.once.json",
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("precious "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// treeHash describes every entry under dir: path, type, mode, content.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += " " + hex.EncodeToString(h.Sum(nil))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestNothingOutsideTheRoot plants, at each path ec2init touches, a symlink
// that leads out of the root (absolute, as an image's own link would read
// on the host, and relative, climbing out with ".."), runs a whole boot and
// a full clean, and checks the target outside is untouched. Errors are
// allowed (a link that climbs out is refused); changes outside are not.
func TestNothingOutsideTheRoot(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.SetUserData([]byte("#cloud-config\nwrite_files:\n  - path: /etc/ec2init-test\n    content: hi\nruncmd:\n  - echo hi\n"))
	// The host paths ec2init reads, writes or removes; each gets a link.
	links := []string{
		"/var/lib/ec2init",
		"/var/lib",
		"/var/lib/ec2init/boots",
		"/var/lib/ec2init/data",
		"/var/lib/ec2init/instances",
		"/var/lib/ec2init/sem",
		"/var/lib/ec2init/records",
		"/var/lib/ec2init/status.json",
		"/run/ec2init",
		"/run",
		"/run/ec2init/status.json",
		"/var/log",
		"/var/log/ec2init.log",
		"/etc/ec2init",
		"/etc/ssh",
		"/etc/machine-id",
		"/var/lib/cloud",
	}
	for _, link := range links {
		for _, kind := range []string{"absolute", "relative"} {
			if kind == "relative" && testing.Short() {
				// A boot per link and kind is some 4 s on two cores; the
				// absolute links alone catch every escape -short needs.
				continue
			}
			t.Run(strings.TrimPrefix(link, "/")+"/"+kind, func(t *testing.T) {
				t.Parallel()
				base := t.TempDir()
				root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
				for _, d := range []string{root, outside} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				sentinel(t, outside)
				// A boot that happened before, so pruning and clean have
				// something of their own to remove.
				old := filepath.Join(root, "var/lib/ec2init/boots/old-boot")
				if !strings.HasPrefix(link, "/var/lib") {
					if err := os.MkdirAll(old, 0o700); err != nil {
						t.Fatal(err)
					}
				}
				p := filepath.Join(root, link)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				target := outside
				if link == "/etc/machine-id" || strings.HasSuffix(link, ".json") || strings.HasSuffix(link, ".log") {
					target = filepath.Join(outside, filepath.Base(link))
				}
				if kind == "relative" {
					rel, err := filepath.Rel(filepath.Dir(p), target)
					if err != nil {
						t.Fatal(err)
					}
					target = rel
				}
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
				before := treeHash(t, outside)

				client, err := imds.New(imds.Config{Endpoint: url, MaxAttempts: 2, RequestTimeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				st, err := agent.Boot(context.Background(), agent.Options{Registry: all.Registry(),
					Root: root, IMDS: client, Log: zap.NewNop(), BootID: bootID,
					IdentifyDeadline: 5 * time.Second, LockTimeout: 5 * time.Second,
				})
				t.Logf("boot: %s, %v; errors %q", st.State, err, st.Errors)
				removed, err := state.Clean(state.CleanOptions{Root: root, Logs: true, Seed: true,
					BakeManifest: true, MachineID: true, SSHHostKeys: true})
				t.Logf("clean: removed %q, %v", removed, err)

				if after := treeHash(t, outside); after != before {
					t.Errorf("the tree outside the root changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}
