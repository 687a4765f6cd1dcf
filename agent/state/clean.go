package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
}

// BakeManifestName is `ec2init bake`'s manifest in StateDir.
const BakeManifestName = "bake.json"

// Clean removes ec2init's state so that the next boot is a first boot:
// everything under /var/lib/ec2init (but seed/ and bake.json, unless
// opts.Seed or opts.BakeManifest), and
// /run/ec2init; with opts.Logs the two log files too. data/ goes first, so
// an interrupted Clean still leaves a disk that looks new. It returns the
// host paths it removed ("/var/lib/ec2init/instances", ...). No Store may be
// in use on the same root meanwhile. SSH host keys and machine-id are not
// its business.
func Clean(opts CleanOptions) ([]string, error) {
	root, err := resolveRoot(opts.Root)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	remove := func(hostPath string) {
		p := filepath.Join(root, hostPath)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return
		}
		// The last component is removed itself, never followed; its parents
		// must not lead out of the root.
		if err := checkInside(root, filepath.Dir(p)); err != nil {
			errs = append(errs, err)
			return
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
			return
		}
		removed = append(removed, hostPath)
	}

	state := filepath.Join(root, StateDir)
	if _, err := os.Lstat(state); err == nil {
		if err := checkInside(root, state); err != nil {
			return nil, err
		}
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
			if err := os.Remove(state); err != nil {
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
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("state: clean: %w", err)
	}
	return removed, nil
}
