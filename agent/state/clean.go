package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// CleanOptions select what Clean removes.
type CleanOptions struct {
	// Root is the root prefix, as in Options.
	Root string
	// Logs also removes /var/log/ec2init.log and /var/log/ec2init-output.log.
	Logs bool
	// Seed also removes /var/lib/ec2init/seed, which is otherwise kept.
	Seed bool
	// BakeManifest also removes /var/lib/ec2init/bake.json, which is
	// otherwise kept: it describes what the image was baked with, not an
	// instance, and without it every boot would fetch the baked items.
	BakeManifest bool
	// MachineID empties /etc/machine-id: an empty one (not a missing one)
	// makes systemd generate a new one on the next boot.
	MachineID bool
	// SSHHostKeys removes /etc/ssh/ssh_host_*key*, so a new instance makes
	// its own.
	SSHHostKeys bool
}

// BakeManifestName is `ec2init bake`'s manifest in StateDir.
const BakeManifestName = "bake.json"

// Host paths Clean touches besides the state.
const (
	MachineIDFile = "/etc/machine-id"
	SSHDir        = "/etc/ssh"
)

// Clean removes ec2init's state so that the next boot is a first boot:
// everything under /var/lib/ec2init (but seed/ and bake.json, unless
// opts.Seed or opts.BakeManifest), and /run/ec2init; with opts.Logs the two
// log files too, with opts.MachineID the machine id, with opts.SSHHostKeys
// the host keys. data/ goes first, so an interrupted Clean still leaves a
// disk that looks new. It returns the host paths it removed
// ("/var/lib/ec2init/instances", ...). No Store may be in use on the same
// root meanwhile.
//
// Every path goes through sys.Root: a symlink under the root is followed
// as in a chroot or refused, never out of the root, and the last component
// of what is removed is removed itself, never followed.
func Clean(opts CleanOptions) ([]string, error) {
	r, err := newRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	remove := func(hostPath string) {
		dir, err := r.Path(filepath.Dir(hostPath))
		if err != nil {
			errs = append(errs, err)
			return
		}
		p := filepath.Join(dir, filepath.Base(hostPath))
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			return
		}
		removed = append(removed, hostPath)
	}

	state, err := r.Path(StateDir)
	if err != nil {
		return nil, fmt.Errorf("state: clean: %w", err)
	}
	entries, err := os.ReadDir(state)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs = append(errs, err)
	default:
		remove(filepath.Join(StateDir, "data"))
		for _, e := range entries {
			if e.Name() == "data" || (e.Name() == "seed" && !opts.Seed) || (e.Name() == BakeManifestName && !opts.BakeManifest) {
				continue
			}
			remove(filepath.Join(StateDir, e.Name()))
		}
		if left, err := os.ReadDir(state); err == nil && len(left) == 0 {
			if err := r.Remove(StateDir); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, StateDir)
			}
		}
	}
	remove(RunDirPath)
	if opts.Logs {
		remove(LogFile)
		remove(OutputLogFile)
	}
	if opts.MachineID {
		if err := r.WriteFile(MachineIDFile, nil, 0o444, nil); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, MachineIDFile+" (emptied)")
		}
	}
	if opts.SSHHostKeys {
		keys, err := hostKeys(r)
		if err != nil {
			errs = append(errs, err)
		}
		for _, k := range keys {
			if err := r.Remove(k); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, k)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("state: clean: %w", err)
	}
	return removed, nil
}

// hostKeys lists the host paths of /etc/ssh/ssh_host_*key* under r.
func hostKeys(r *sys.Root) ([]string, error) {
	entries, err := r.ReadDir(SSHDir)
	if err != nil {
		return nil, fmt.Errorf("host keys: %w", err)
	}
	var keys []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "ssh_host_") && strings.Contains(n[len("ssh_host_"):], "key") {
			keys = append(keys, SSHDir+"/"+n)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
