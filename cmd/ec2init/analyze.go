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
)

func newAnalyzeCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "analyze",
		Short: "Where the boot's time went: show, blame, boot",
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print as JSON")
	load := func() (state.Status, error) {
		// This boot's record while it runs or once done; the last
		// boot's otherwise.
		bs, err := agent.ReadStatus(agent.Options{Root: e.root, BootID: e.bootID})
		if err == nil && !bs.Recorded() {
			err = fmt.Errorf("no boot recorded yet under %s", e.root)
		}
		return bs.Status, err
	}
	table := func(w io.Writer, rows []analyze.Row) error {
		if asJSON {
			return writeJSON(w, rows)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "OFFSET ms\tDURATION ms\t  STAGE\t  MODULE\t  OUTCOME\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%.1f\t%.1f\t  %s\t  %s\t  %s\t\n", r.OffsetMS, r.DurationMS, r.Stage, r.Module, r.Outcome)
		}
		return tw.Flush()
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Each stage and module with its start offset and duration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := load()
			if err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "boot %s of %s, %s\n", st.BootID, st.InstanceID, st.State)
			}
			return table(cmd.OutOrStdout(), analyze.Show(st))
		},
	}, &cobra.Command{
		Use:   "blame",
		Short: "Modules and scripts, slowest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := load()
			if err != nil {
				return err
			}
			return table(cmd.OutOrStdout(), analyze.Blame(st))
		},
	}, &cobra.Command{
		Use:   "boot",
		Short: "Kernel start, systemd start, ec2init start and end",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := load()
			if err != nil {
				return err
			}
			kernel, _ := analyze.KernelBootTime("/proc/stat")
			b := analyze.Boot(st, kernel, userspaceStart())
			out := cmd.OutOrStdout()
			if asJSON {
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
		},
	})
	return cmd
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
