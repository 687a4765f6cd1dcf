package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/analyze"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/software"
)

// analyzeOptions are analyze's subcommand and flags.
type analyzeOptions struct {
	view   string // show, software, blame or boot
	asJSON bool
	// kernelStart and userspaceStart, for boot: when the kernel and
	// systemd started (zero: unknown).
	kernelStart, userspaceStart time.Time
}

func newAnalyzeCommand(e *env) *cobra.Command {
	var o analyzeOptions
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Where the boot's time went: show, blame, boot",
	}
	cmd.PersistentFlags().BoolVar(&o.asJSON, "json", false, "print as JSON")
	sub := func(view, short string) *cobra.Command {
		return &cobra.Command{
			Use:   view,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				o := o
				o.view = view
				if view == "boot" {
					o.kernelStart, _ = analyze.KernelBootTime("/proc/stat")
					o.userspaceStart = userspaceStart()
				}
				return runAnalyze(e, o, cmd.OutOrStdout())
			},
		}
	}
	cmd.AddCommand(
		sub("show", "Each stage and module with its start offset and duration"),
		sub("software", "Each software item with the bytes it fetched and the time it took; the boot with and without fetching"),
		sub("blame", "Modules and scripts, slowest first"),
		sub("boot", "Kernel start, systemd start, ec2init start and end"),
	)
	return cmd
}

// runAnalyze prints one view of the recorded boot: this boot's record while
// it runs or once done, the last boot's otherwise.
func runAnalyze(e *env, o analyzeOptions, out io.Writer) error {
	bs, err := agent.ReadStatus(agent.Options{Root: e.root, BootID: e.bootID})
	if err == nil && !bs.Recorded() {
		err = fmt.Errorf("no boot recorded yet under %s", e.root)
	}
	if err != nil {
		return err
	}
	st := bs.Status
	table := func(rows []analyze.Row) error {
		if o.asJSON {
			return writeJSON(out, rows)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "OFFSET ms\tDURATION ms\t  STAGE\t  MODULE\t  OUTCOME\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%.1f\t%.1f\t  %s\t  %s\t  %s\t\n", r.OffsetMS, r.DurationMS, r.Stage, r.Module, r.Outcome)
		}
		return tw.Flush()
	}
	switch o.view {
	case "show":
		if !o.asJSON {
			fmt.Fprintf(out, "boot %s of %s, %s\n", st.BootID, st.InstanceID, st.State)
		}
		if err := table(analyze.Show(st)); err != nil || o.asJSON {
			return err
		}
		if c, ok := softwareCost(e.root, st); ok {
			fmt.Fprintln(out)
			return printSoftwareCost(out, c)
		}
		return nil
	case "software":
		c, _ := softwareCost(e.root, st)
		if o.asJSON {
			return writeJSON(out, c)
		}
		return printSoftwareCost(out, c)
	case "blame":
		return table(analyze.Blame(st))
	case "boot":
		b := analyze.Boot(st, o.kernelStart, o.userspaceStart)
		if o.asJSON {
			return writeJSON(out, b)
		}
		mark := func(t time.Time) string {
			if t.IsZero() {
				return "unknown"
			}
			return t.UTC().Format("2006-01-02 15:04:05.000 MST")
		}
		fmt.Fprintf(out, "-- Most recent boot --\n")
		fmt.Fprintf(out, "  Kernel started at:                 %s\n", mark(b.KernelStart))
		fmt.Fprintf(out, "  Userspace (systemd) started at:    %s\n", mark(b.UserspaceStart))
		fmt.Fprintf(out, "  Kernel time to boot (seconds):     %.3f\n", b.KernelSeconds)
		fmt.Fprintf(out, "  ec2init started at:                %s\n", mark(b.EC2InitStart))
		fmt.Fprintf(out, "  Userspace to ec2init (seconds):    %.3f\n", b.ToEC2InitSeconds)
		fmt.Fprintf(out, "  ec2init finished at:               %s\n", mark(b.EC2InitEnd))
		fmt.Fprintf(out, "  ec2init took (seconds):            %.3f\n", b.EC2InitSeconds)
		return nil
	}
	return fmt.Errorf("analyze: unknown view %q", o.view)
}

// softwareCost is what the software items cost boot st, from the software
// module's record for its instance; false when the instance has none.
func softwareCost(root string, st state.Status) (analyze.SoftwareCost, bool) {
	r, err := sys.NewRoot(root)
	if err != nil || st.InstanceID == "" {
		return analyze.Software(st, nil), false
	}
	results, err := software.ReadResults(r, st.InstanceID)
	if err != nil || len(results) == 0 {
		return analyze.Software(st, nil), false
	}
	items := make([]analyze.SoftwareItem, 0, len(results))
	for _, res := range results {
		it := analyze.SoftwareItem{Name: res.Name, Policy: res.Policy, Action: res.Action, FetchMS: res.FetchMS, InstallMS: res.InstallMS}
		if res.FetchMS > 0 && !res.Cached {
			it.FetchedBytes = res.Bytes
		}
		items = append(items, it)
	}
	return analyze.Software(st, items), true
}

func printSoftwareCost(w io.Writer, c analyze.SoftwareCost) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOFTWARE ITEM\tPOLICY\tACTION\tFETCHED\tFETCH ms\tINSTALL ms")
	for _, it := range c.Items {
		fetched := "-"
		if it.FetchedBytes > 0 {
			fetched = humanBytes(it.FetchedBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%.1f\n", it.Name, it.Policy, it.Action, fetched, it.FetchMS, it.InstallMS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "ec2init's work: %.1f ms; fetching: %.1f ms; without fetching: %.1f ms\n", c.BootMS, c.FetchMS, c.WithoutFetchMS)
	return err
}

// humanBytes is n in the largest binary unit it fills.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// userspaceStart asks systemd when userspace began; zero when there is no
// systemd to ask (a container, a laptop).
func userspaceStart() time.Time {
	out, err := exec.Command("systemctl", "show", "--property=UserspaceTimestampMonotonic", "--value").Output()
	if err != nil {
		return time.Time{}
	}
	usec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || usec == 0 {
		return time.Time{}
	}
	// Monotonic microseconds since boot: place them on the wall clock via
	// the current uptime.
	up, err := uptime()
	if err != nil {
		return time.Time{}
	}
	return time.Now().Add(-up).Add(time.Duration(usec) * time.Microsecond)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
