package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
	"github.com/ec2init/ec2init/modules/software"
)

type bakeOptions struct {
	configs []string
	dryRun  bool
	chroot  bool
}

func newBakeCommand(e *env) *cobra.Command {
	var o bakeOptions
	cmd := &cobra.Command{
		Use:   "bake",
		Short: "Install the software module's bake items and clean the instance, before making an AMI",
		Long: "Run on the instance that will become the AMI (a Packer shell provisioner, or by hand).\n" +
			"Reads the cloud-config from --config files (or from the user data, as the boot does),\n" +
			"fetches, verifies and installs every `software` item with policy: bake (units are enabled,\n" +
			"not started), then does what `ec2init clean --logs --ssh-host-keys --machine-id` does,\n" +
			"prints what was baked and writes the manifest " + software.ManifestFile + ", against which\n" +
			"each boot verifies the baked items. Nothing is cleaned or recorded when an item fails.",
		Example: "  ec2init bake --config software.yaml\n  ec2init bake --config software.yaml --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBake(cmd.Context(), e, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.configs, "config", nil, "cloud-config file to read (repeatable, merged in order; default: the instance's user data)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	f.BoolVar(&o.chroot, "chroot", false, "run package tools chrooted into --root (baking a mounted image)")
	return cmd
}

func runBake(ctx context.Context, e *env, o bakeOptions, out, errOut io.Writer) error {
	reg, err := bakeRegistry()
	if err != nil {
		return err
	}
	client, err := e.imdsClient(nil)
	if err != nil {
		return err
	}
	root, err := sys.NewRoot(e.root)
	if err != nil {
		return err
	}
	cfg, err := loadBakeConfig(ctx, root, o.configs, client, reg, errOut)
	if err != nil {
		return err
	}
	if o.dryRun {
		return printPlan(out, cfg)
	}
	log, err := e.logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	sysCfg, err := config.LoadSystem(e.root)
	if err != nil {
		return err
	}
	env := &modules.Env{
		Root:    root,
		Runner:  &sys.Runner{Root: root, Chroot: o.chroot, Log: log},
		Log:     log,
		Console: errOut, // package tools' output; stdout keeps the summary
		System:  sysCfg,
		Version: version,
	}
	sw := software.Software{IMDS: client}
	bar := newBakeBar(out)
	if bar != nil {
		sw.Progress = bar.update
	}
	start := time.Now()
	man, results, err := sw.Bake(ctx, env, cfg, version)
	if bar != nil {
		bar.finish()
	}
	if errors.Is(err, software.ErrNothingToBake) {
		return err
	}
	printBakeSummary(out, results)
	if err != nil {
		log.Error("bake failed: nothing cleaned, no manifest written", zap.Error(err))
		return fmt.Errorf("bake: %w", err)
	}
	if err := cleanForImage(ctx, e, out); err != nil {
		return fmt.Errorf("bake: clean: %w", err)
	}
	// After the clean, which empties the state directory.
	if err := software.WriteManifest(root, man); err != nil {
		return err
	}
	if err := installImageConfig(root, o.configs, out); err != nil {
		return fmt.Errorf("bake: %w", err)
	}
	fmt.Fprintf(out, "baked %d item(s) in %s; manifest %s\n", len(man.Items), time.Since(start).Round(time.Millisecond), software.ManifestFile)
	return nil
}

// bakeRegistry is every module, with software even where the registry
// does not list it yet, so its key validates.
func bakeRegistry() (*modules.Registry, error) {
	reg := all.Registry()
	if _, ok := reg.Owner(software.Key); ok {
		return reg, nil
	}
	return modules.NewRegistry(append(reg.All(), software.Software{})...)
}

// bakedConfigPrefix names the files installImageConfig writes into the
// image's cloud-config directory.
const bakedConfigPrefix = "90-bake-"

// installImageConfig copies the --config files into the image's cloud-config
// (agent.ImageConfigDir), so every instance of the image boots with the
// list that was baked: baked items verified, boot items fetched, without
// the list in each launch's user data. A re-bake replaces what an earlier
// one installed; files already in the directory stay where they are.
func installImageConfig(root *sys.Root, files []string, out io.Writer) error {
	dir, err := root.Path(agent.ImageConfigDir)
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
		p := path.Join(agent.ImageConfigDir, name)
		if err := root.MkdirAll(agent.ImageConfigDir, 0o755); err != nil {
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

// loadBakeConfig reads and validates the cloud-config as `ec2init schema`
// and the boot do: the image's own cloud-config (agent.ImageConfigDir)
// and the --config files after it, or, with neither, the user data's
// cloud-config parts. An error in any document stops the bake.
func loadBakeConfig(ctx context.Context, root *sys.Root, files []string, client *imds.Client, reg *modules.Registry, errOut io.Writer) (*config.CloudConfig, error) {
	type input struct {
		name string
		data []byte
	}
	var inputs []input
	image, err := agent.ReadImageConfig(root)
	if err != nil {
		return nil, fmt.Errorf("image cloud-config: %w", err)
	}
	dir, err := root.Path(agent.ImageConfigDir)
	if err != nil {
		return nil, err
	}
	for _, c := range image {
		// A re-bake reads the --config files, not their earlier copies.
		if len(files) > 0 && strings.HasPrefix(path.Base(c.Name), bakedConfigPrefix) {
			continue
		}
		inputs = append(inputs, input{c.Name, c.Body})
	}
	for _, f := range files {
		if abs, err := filepath.Abs(f); err == nil && filepath.Dir(abs) == dir {
			continue // read above, as part of the image
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		inputs = append(inputs, input{f, data})
	}
	if len(inputs) == 0 {
		raw, err := client.UserData(ctx)
		if errors.Is(err, imds.ErrNotFound) {
			return nil, errors.New("the instance has no user data: pass the cloud-config with --config FILE")
		}
		if err != nil {
			return nil, fmt.Errorf("user data: %w (or pass the cloud-config with --config FILE)", err)
		}
		inputs = append(inputs, input{"user data", raw})
	}
	var docs []config.Doc
	var errs []string
	for _, in := range inputs {
		checked, err := agent.ValidateInput(in.name, in.data, reg)
		if err != nil {
			return nil, err
		}
		for _, c := range checked {
			for _, d := range c.Diagnostics {
				if d.Severity == config.SeverityError {
					errs = append(errs, d.String())
				} else {
					fmt.Fprintln(errOut, d.String())
				}
			}
			doc, err := config.ParseDoc(c.Source, c.Body)
			if err != nil {
				continue // reported above
			}
			docs = append(docs, doc)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cloud-config: %s", strings.Join(errs, "\n  "))
	}
	return config.Merge(docs...), nil
}

func printPlan(out io.Writer, cfg *config.CloudConfig) error {
	plan, err := software.Plan(cfg)
	if err != nil {
		return err
	}
	if plan == nil {
		return software.ErrNothingToBake
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPOLICY\tTYPE\tSOURCE\tCHECKSUM\tDEST\tACTION")
	for _, p := range plan {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Policy, p.Type, dash(p.Source), dash(shortSum(p.Checksum)), dash(p.Dest), p.Action)
	}
	tw.Flush()
	fmt.Fprintln(out, "then: ec2init clean --logs --ssh-host-keys --machine-id; write", software.ManifestFile)
	fmt.Fprintln(out, "(dry run: nothing fetched, installed or removed)")
	return nil
}

func printBakeSummary(out io.Writer, results []software.ItemResult) {
	if len(results) == 0 {
		fmt.Fprintln(out, "no item has policy: bake")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tVERSION/CHECKSUM\tBYTES\tCACHED\tRESULT")
	for _, r := range results {
		what := shortSum(r.Checksum)
		if r.Version != "" {
			what = r.Version
		}
		result := r.Action
		if r.Error != "" {
			result = "failed: " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Type, dash(what), r.Bytes, yesNo(r.Cached), result)
	}
	tw.Flush()
}

// shortSum keeps "algo:" and 16 hex digits: enough to tell versions apart
// in a table; the manifest has the whole sum.
func shortSum(s string) string {
	algo, sum, ok := strings.Cut(s, ":")
	if !ok || len(sum) <= 16 {
		return s
	}
	return algo + ":" + sum[:16] + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// cleanForImage does what `ec2init clean --logs --ssh-host-keys
// --machine-id` does, through that command's own code.
func cleanForImage(ctx context.Context, e *env, out io.Writer) error {
	clean := newCleanCommand(e)
	for _, f := range []string{"logs", "ssh-host-keys", "machine-id"} {
		if err := clean.Flags().Set(f, "true"); err != nil {
			return err
		}
	}
	clean.SetOut(out)
	clean.SetContext(ctx)
	return clean.RunE(clean, nil)
}

// bakeBar is one progress bar over every download, on a terminal only.
type bakeBar struct {
	mu          sync.Mutex
	bar         *progressbar.ProgressBar
	done, total map[string]int64
}

func newBakeBar(out io.Writer) *bakeBar {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &bakeBar{
		bar: progressbar.NewOptions64(-1, progressbar.OptionSetWriter(f), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("fetching"), progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetWidth(30)),
		done: map[string]int64{}, total: map[string]int64{},
	}
}

func (b *bakeBar) update(name string, done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done[name] = done
	if total > 0 {
		b.total[name] = total
	}
	var d, t int64
	for k, v := range b.done {
		d += v
		if tt, ok := b.total[k]; ok {
			t += tt
		} else {
			t += v // unknown size: count what is known
		}
	}
	b.bar.ChangeMax64(t)
	b.bar.Describe("fetching " + name)
	_ = b.bar.Set64(d)
}

func (b *bakeBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Finish()
}
