package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// Pinner is a Baker that can freeze what the instance resolved, for
// BakeOptions.Pin. After a successful Bake, Pin returns a cloud-config
// document whose software list has every item that resolved a version
// (version_from) fixed to that version, and one line per pinned item
// ("name version") for the output; no lines means nothing was pinned. An
// error (an item whose version could not be resolved) stops the bake
// before anything is cleaned.
type Pinner interface {
	Pin(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) (doc []byte, pinned []string, err error)
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
	// Pin freezes the versions resolved during the bake into the image's
	// cloud-config (PinnedConfigFile, read after the Configs), so every
	// instance installs those rather than resolving the newest itself.
	// The Baker must be a Pinner.
	Pin bool
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
	pinner, canPin := o.Baker.(Pinner)
	if o.Pin && !canPin {
		return errors.New("bake: --pin: the baker cannot pin versions")
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
	var pinned []byte
	if o.Pin {
		// Before the clean: a version that cannot be pinned leaves the
		// instance as it was.
		if pinned, err = pinVersions(ctx, o, pinner, env, cfg); err != nil {
			o.Log.Error("bake --pin failed: nothing cleaned, no manifest written", zap.Error(err))
			return fmt.Errorf("bake: pin: %w", err)
		}
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
	if pinned != nil {
		// After the --config copies (installImageConfig removed an
		// earlier bake's pins with them): this software key replaces
		// theirs.
		if err := root.WriteFile(PinnedConfigFile, pinned, 0o600, nil); err != nil {
			return fmt.Errorf("bake: pin: %w", err)
		}
		fmt.Fprintf(o.Out, "image cloud-config: %s (pinned versions)\n", PinnedConfigFile)
	}
	return nil
}

// PinnedConfigFile is where `bake --pin` writes the pinned software list:
// it sorts after the --config copies (bakedConfigPrefix then a digit), so
// its software key is the one the image's instances read.
const PinnedConfigFile = ImageConfigDir + "/" + bakedConfigPrefix + "pin.cfg"

// pinVersions asks the Pinner for the pinned document and checks it as a
// boot will read it (strictly, with the registry): a pin that would not
// validate must not reach every instance of the image. nil when nothing
// resolved a version.
func pinVersions(ctx context.Context, o BakeOptions, p Pinner, env *modules.Env, cfg *config.CloudConfig) ([]byte, error) {
	doc, lines, err := p.Pin(ctx, env, cfg)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		fmt.Fprintln(o.Out, "pin: no item resolved a version (version_from): nothing pinned")
		return nil, nil
	}
	srcs, err := InputSources(PinnedConfigFile, doc)
	if err == nil {
		_, err = LoadCloudConfig(srcs, ConfigPolicy{Registry: o.Registry, Strict: true})
	}
	if err != nil {
		return nil, fmt.Errorf("the pinned cloud-config does not validate: %w", err)
	}
	for _, l := range lines {
		fmt.Fprintln(o.Out, "pinned", l)
	}
	// Which versions were pinned, for `status --long` (ReadPins): the
	// pinned URLs hold them, but not by name. After the first line, which
	// says what the document is.
	first, rest, _ := bytes.Cut(doc, []byte("\n"))
	var b bytes.Buffer
	b.Write(first)
	b.WriteString("\n")
	for _, l := range lines {
		b.WriteString(pinComment + l + "\n")
	}
	b.Write(rest)
	return b.Bytes(), nil
}

// pinComment starts each line of PinnedConfigFile naming a pinned item:
// its name, version and, in brackets, what the Pinner adds.
const pinComment = "# pinned by ec2init bake --pin: "

// ReadPins returns the versions `bake --pin` froze in the image, by item
// name; nil when nothing was pinned.
func ReadPins(root *sys.Root) (map[string]string, error) {
	data, err := root.ReadFile(PinnedConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pins := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, pinComment)); strings.HasPrefix(l, pinComment) && len(f) >= 2 {
			pins[f[0]] = f[1]
		}
	}
	return pins, nil
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
// the list in each launch's user data. A re-bake with --config files
// replaces what an earlier one installed (its pins too); without, the
// earlier copies were this bake's input and stay. Files already in the
// directory stay where they are.
func installImageConfig(root *sys.Root, files []string, out io.Writer) error {
	dir, err := root.Path(ImageConfigDir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
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
