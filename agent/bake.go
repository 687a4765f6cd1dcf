package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// Baker is the module work `ec2init bake` does (the software module's
// policy: bake items). The agent runs the workflow around it and imports
// no module: cmd wires the concrete one.
type Baker interface {
	// Bake installs cfg's bake-time items. skipped says cfg has nothing
	// for it: err then says why and is returned as it is, nothing having
	// been tried. Any other error stops the bake before anything is
	// cleaned.
	Bake(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) (skipped bool, err error)
	// Record writes what was baked (the manifest) into the cleaned image.
	Record(root *sys.Root) error
}

// BakeOptions configure Bake and LoadBakeConfig.
type BakeOptions struct {
	// Root prefixes every path ("/" on the instance being baked).
	Root string
	// Configs are cloud-config files, merged in order after the image's
	// own (ImageConfigDir); none reads the user data.
	Configs []string
	// Chroot runs package tools chrooted into Root (a mounted image).
	Chroot bool
	// IMDS gives the user data when Configs is empty.
	IMDS *imds.Client
	// Registry validates the cloud-config.
	Registry *modules.Registry
	Baker    Baker
	Log      *zap.Logger
	// Console receives the cloud-config's warnings and the package tools'
	// output.
	Console io.Writer
	// Out receives what the clean removed and which image cloud-config
	// files were installed.
	Out     io.Writer
	Version string
}

// Bake installs the Baker's items from the cloud-config (LoadBakeConfig),
// then cleans the image as `ec2init clean --logs --ssh-host-keys
// --machine-id` does, has the Baker record what it baked,
// and installs the Configs into the image's cloud-config, so every
// instance of the image boots with the list that was baked. Nothing is
// cleaned or recorded when an item fails.
func Bake(ctx context.Context, o BakeOptions) error {
	o = o.withDefaults()
	root, err := sys.NewRoot(o.Root)
	if err != nil {
		return err
	}
	cfg, err := LoadBakeConfig(ctx, o)
	if err != nil {
		return err
	}
	env, err := NewModuleEnv(ModuleEnvOptions{Root: root, Chroot: o.Chroot, IMDS: o.IMDS,
		Log: o.Log, Console: o.Console, Version: o.Version})
	if err != nil {
		return err
	}
	skipped, err := o.Baker.Bake(ctx, env, cfg)
	if skipped {
		return err
	}
	if err != nil {
		o.Log.Error("bake failed: nothing cleaned, no manifest written", zap.Error(err))
		return fmt.Errorf("bake: %w", err)
	}
	removed, err := CleanImage(ctx, root, CleanWhat{Logs: true, SSHHostKeys: true, MachineID: true})
	if err != nil {
		return fmt.Errorf("bake: clean: %w", err)
	}
	for _, r := range removed {
		fmt.Fprintln(o.Out, "removed", r)
	}
	// After the clean, which empties the state directory.
	if err := o.Baker.Record(root); err != nil {
		return err
	}
	if err := installImageConfig(root, o.Configs, o.Out); err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	return nil
}

func (o BakeOptions) withDefaults() BakeOptions {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return o
}

// bakedConfigPrefix names the files installImageConfig writes into the
// image's cloud-config directory.
const bakedConfigPrefix = "90-bake-"

// installImageConfig copies the --config files into the image's cloud-config
// (ImageConfigDir), so every instance of the image boots with the
// list that was baked: baked items verified, boot items fetched, without
// the list in each launch's user data. A re-bake replaces what an earlier
// one installed; files already in the directory stay where they are.
func installImageConfig(root *sys.Root, files []string, out io.Writer) error {
	dir, err := root.Path(ImageConfigDir)
	if err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, bakedConfigPrefix+"*"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	for i, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		if filepath.Dir(abs) == dir {
			continue // already the image's
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s%d-%s.cfg", bakedConfigPrefix, i+1, strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)))
		p := path.Join(ImageConfigDir, name)
		if err := root.MkdirAll(ImageConfigDir, 0o755); err != nil {
			return err
		}
		// 0600: a software list may name private buckets and hosts.
		if err := root.WriteFile(p, data, 0o600, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "image cloud-config: %s (from %s)\n", p, f)
	}
	return nil
}

// LoadBakeConfig reads and validates the cloud-config as `ec2init schema`
// and the boot do: the image's own cloud-config (ImageConfigDir) and the
// Configs after it, or, with neither, the user data's cloud-config parts.
// Warnings go to o.Console; an error in any document fails it.
func LoadBakeConfig(ctx context.Context, o BakeOptions) (*config.CloudConfig, error) {
	o = o.withDefaults()
	root, err := sys.NewRoot(o.Root)
	if err != nil {
		return nil, err
	}
	var inputs []ConfigSource
	image, err := ReadImageConfig(root)
	if err != nil {
		return nil, fmt.Errorf("image cloud-config: %w", err)
	}
	dir, err := root.Path(ImageConfigDir)
	if err != nil {
		return nil, err
	}
	for _, c := range image {
		// A re-bake reads the --config files, not their earlier copies.
		if len(o.Configs) > 0 && strings.HasPrefix(path.Base(c.Name), bakedConfigPrefix) {
			continue
		}
		inputs = append(inputs, c)
	}
	for _, f := range o.Configs {
		if abs, err := filepath.Abs(f); err == nil && filepath.Dir(abs) == dir {
			continue // read above, as part of the image
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		inputs = append(inputs, ConfigSource{Name: f, Body: data})
	}
	if len(inputs) == 0 {
		if o.IMDS == nil {
			return nil, errors.New("no metadata client for the user data: pass the cloud-config with --config FILE")
		}
		raw, err := o.IMDS.UserData(ctx)
		if errors.Is(err, imds.ErrNotFound) {
			return nil, errors.New("the instance has no user data: pass the cloud-config with --config FILE")
		}
		if err != nil {
			return nil, fmt.Errorf("user data: %w (or pass the cloud-config with --config FILE)", err)
		}
		inputs = append(inputs, ConfigSource{Name: "user data", Body: raw})
	}
	// Each input's warnings are printed even when a later input cannot be
	// read, as they were when inputs were checked one by one.
	var docs []ConfigSource
	var splitErr error
	for _, in := range inputs {
		srcs, err := InputSources(in.Name, in.Body)
		if err != nil {
			splitErr = err
			break
		}
		docs = append(docs, srcs...)
	}
	loaded, err := LoadCloudConfig(docs, ConfigPolicy{Registry: o.Registry, Strict: true})
	for _, c := range loaded.Checked {
		for _, d := range c.Diagnostics {
			if d.Severity != config.SeverityError {
				fmt.Fprintln(o.Console, d.String())
			}
		}
	}
	if splitErr != nil {
		return nil, splitErr
	}
	if err != nil {
		return nil, err
	}
	return loaded.Config, nil
}
