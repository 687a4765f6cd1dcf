package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/all"
)

func newSchemaCommand(e *env) *cobra.Command {
	var annotate, system, useIMDS bool
	var instanceData string
	cmd := &cobra.Command{
		Use:   "schema [--annotate] FILE|-",
		Short: "Validate cloud-config (or whole user data) against the modules' schemas",
		Long: "Validate a cloud-config file, or user data with cloud-config parts, and print each\n" +
			"problem as file:line:column with the key path and what was expected. Unknown keys\n" +
			"are warnings; type errors are errors and make the exit status 1.\n" +
			"Jinja parts are rendered first, as the boot renders them: with --imds from this\n" +
			"instance's metadata, with --instance-data from cloud-init's instance-data.json,\n" +
			"else with no data (every variable undefined, warned about).\n" +
			"With --system, validate /etc/ec2init/config.yaml and conf.d under --root instead.",
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if system {
				if _, err := config.LoadSystem(e.root); err != nil {
					return err
				}
				fmt.Fprintln(out, "system config: valid")
				return nil
			}
			if len(args) != 1 {
				return fmt.Errorf("schema: name a file, or - for standard input")
			}
			name, data, err := readInput(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			var opts agent.SchemaOptions
			switch {
			case instanceData != "":
				b, err := os.ReadFile(instanceData)
				if err != nil {
					return fmt.Errorf("schema: %w", err)
				}
				if opts.Vars, err = agent.ReadInstanceData(b); err != nil {
					return fmt.Errorf("schema: %s: %w", instanceData, err)
				}
			case useIMDS:
				client, err := e.imdsClient(nil)
				if err != nil {
					return err
				}
				if opts.Vars, err = agent.InstanceVars(cmd.Context(), client); err != nil {
					return fmt.Errorf("schema: %w", err)
				}
			}
			docs, err := agent.ValidateInputWith(name, data, all.Registry(), opts)
			if err != nil {
				return err
			}
			configs := 0
			errors := 0
			for _, d := range docs {
				if d.Body != nil {
					configs++
				}
				if annotate {
					writeAnnotated(out, d)
				}
				for _, diag := range d.Diagnostics {
					if diag.Severity == config.SeverityError {
						errors++
					}
					if !annotate {
						fmt.Fprintln(out, diag.String())
					}
				}
			}
			if errors > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("ec2init: schema: %d error(s)", errors)}
			}
			switch {
			case annotate:
			case configs == 0:
				fmt.Fprintf(out, "%s: valid user data (no cloud-config part to check)\n", name)
			default:
				fmt.Fprintf(out, "%s: valid cloud-config\n", name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&annotate, "annotate", false, "print the document with each problem beside its line")
	cmd.Flags().StringVar(&instanceData, "instance-data", "", "render jinja parts with this instance-data.json (cloud-init's format)")
	cmd.Flags().BoolVar(&useIMDS, "imds", false, "render jinja parts with this instance's metadata (IMDS)")
	cmd.MarkFlagsMutuallyExclusive("instance-data", "imds")
	cmd.Flags().BoolVar(&system, "system", false, "validate ec2init's own config under --root")
	return cmd
}

func readInput(stdin io.Reader, arg string) (string, []byte, error) {
	if arg == "-" {
		b, err := io.ReadAll(stdin)
		return "<stdin>", b, err
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return "", nil, fmt.Errorf("schema: %w", err)
	}
	return arg, b, nil
}

// writeAnnotated prints a document with "# E1: ..." / "# W1: ..." beside
// the lines problems point at, and the legend below, as cloud-init's
// --annotate does.
func writeAnnotated(w io.Writer, d agent.CheckedDoc) {
	if d.Body == nil { // about the user data as a whole: no lines to annotate
		for _, diag := range d.Diagnostics {
			fmt.Fprintf(w, "# %s\n", diag)
		}
		return
	}
	byLine := map[int][]string{}
	var legend []string
	for i, diag := range d.Diagnostics {
		tag := fmt.Sprintf("E%d", i+1)
		if diag.Severity == config.SeverityWarning {
			tag = fmt.Sprintf("W%d", i+1)
		}
		byLine[diag.Line] = append(byLine[diag.Line], tag)
		legend = append(legend, fmt.Sprintf("# %s: %s: %s", tag, diag.Path, diag.Message))
	}
	lines := strings.Split(strings.TrimRight(string(d.Body), "\n"), "\n")
	for i, l := range lines {
		if tags := byLine[i+1]; len(tags) > 0 {
			fmt.Fprintf(w, "%s\t\t# %s\n", l, strings.Join(tags, ","))
		} else {
			fmt.Fprintln(w, l)
		}
	}
	if len(legend) > 0 {
		fmt.Fprintf(w, "\n# Problems in %s: -------------\n%s\n", d.Source, strings.Join(legend, "\n"))
	}
}

func newModulesCommand() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "modules",
		Short: "List the cloud-config modules: stage, frequency, keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if markdown {
				_, err := io.WriteString(cmd.OutOrStdout(), modules.ModulesMarkdown(all.Registry()))
				return err
			}
			// The plan, as the boot runs it (agent.Plan): slots included.
			reg := all.Registry()
			keys := map[string]string{}
			for _, m := range reg.All() {
				keys[m.Name()] = strings.Join(modules.KeyNames(m), ", ")
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STAGE\tORDER\tMODULE\tFREQUENCY\tKEYS")
			for _, it := range agent.Plan(reg) {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", it.Stage, it.Order, it.Name, it.Frequency, keys[it.Name])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print docs/modules.md")
	return cmd
}
