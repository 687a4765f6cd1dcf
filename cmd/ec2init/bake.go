package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
	"github.com/ec2init/ec2init/modules/software"
)

type bakeOptions struct {
	configs []string
	dryRun  bool
	chroot  bool
	pin     bool
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
			"each boot verifies the baked items. Nothing is cleaned or recorded when an item fails.\n" +
			"With --pin, every item with version_from (boot items too: resolved and verified, not installed)\n" +
			"is frozen to the version this instance resolved, in " + agent.PinnedConfigFile + ",\n" +
			"so the whole fleet of the image installs that version.",
		Example: "  ec2init bake --config software.yaml\n  ec2init bake --config software.yaml --dry-run\n  ec2init bake --config software.yaml --pin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBake(cmd.Context(), e, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.configs, "config", nil, "cloud-config file to read (repeatable, merged in order; default: the instance's user data)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	f.BoolVar(&o.chroot, "chroot", false, "run package tools chrooted into --root (baking a mounted image)")
	f.BoolVar(&o.pin, "pin", false, "freeze every version_from item to the version resolved now, in the image's cloud-config")
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
	opts := agent.BakeOptions{Root: e.root, Configs: o.configs, Chroot: o.chroot, Pin: o.pin, IMDS: client, Registry: reg,
		Console: errOut, // warnings and package tools' output; stdout keeps the summary
		Out:     out, Version: version}
	if o.dryRun {
		cfg, err := agent.LoadBakeConfig(ctx, opts)
		if err != nil {
			return err
		}
		if err := printPlan(out, cfg); err != nil {
			return err
		}
		if o.pin {
			fmt.Fprintln(out, "then (--pin): each version_from item frozen to the version resolved, in", agent.PinnedConfigFile)
		}
		return nil
	}
	log, err := e.logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr sync errors are not actionable
	opts.Log = log
	b := &softwareBaker{sw: software.Software{IMDS: client}, out: out}
	opts.Baker = b
	if err := agent.Bake(ctx, opts); err != nil {
		return err
	}
	fmt.Fprintf(out, "baked %d item(s) in %s; manifest %s\n", len(b.man.Items), time.Since(b.start).Round(time.Millisecond), software.ManifestFile)
	return nil
}

// softwareBaker is the software module as agent.Bake's Baker (and
// Pinner), with the progress bar and the summary table this command prints.
type softwareBaker struct {
	sw      software.Software
	out     io.Writer
	start   time.Time
	man     *software.Manifest
	results []software.ItemResult
}

func (b *softwareBaker) Bake(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) (bool, error) {
	bar := newBakeBar(b.out)
	if bar != nil {
		b.sw.Progress = bar.update
	}
	b.start = time.Now()
	man, results, err := b.sw.Bake(ctx, env, cfg, version)
	if bar != nil {
		bar.finish()
	}
	if errors.Is(err, software.ErrNothingToBake) {
		return true, err
	}
	printBakeSummary(b.out, results)
	b.man, b.results = man, results
	return false, err
}

// Pin freezes the bake items' resolved versions (from Bake) and the boot
// items' (resolved and verified now, not installed).
func (b *softwareBaker) Pin(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) ([]byte, []string, error) {
	boot, err := b.sw.Resolve(ctx, env, cfg)
	if err != nil {
		return nil, nil, err
	}
	results := append(append([]software.ItemResult(nil), b.results...), boot...)
	var lines []string
	for _, r := range results {
		if r.Err() == nil && r.Version != "" && r.ResolvedURL != "" {
			lines = append(lines, fmt.Sprintf("%s %s (%s, %s)", r.Name, r.Version, r.Policy, r.ResolvedURL))
		}
	}
	if len(lines) == 0 {
		return nil, nil, nil
	}
	doc, err := software.Pin(cfg, results)
	if err != nil {
		return nil, nil, err
	}
	return doc, lines, nil
}

func (b *softwareBaker) Record(root *sys.Root) error { return software.WriteManifest(root, b.man) }

// bakeRegistry is every module, with software even where the registry
// does not list it yet, so its key validates.
func bakeRegistry() (*modules.Registry, error) {
	reg := all.Registry()
	if _, ok := reg.Owner(software.Key); ok {
		return reg, nil
	}
	return modules.NewRegistry(append(reg.All(), software.Software{})...)
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
