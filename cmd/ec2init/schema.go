package main

import (
	"context"
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

// schemaOptions are the schema command's flags and argument.
type schemaOptions struct {
	input        string // a file, or - for standard input
	annotate     bool
	system       bool
	useIMDS      bool
	instanceData string
}

func newSchemaCommand(e *env) *cobra.Command {
	var o schemaOptions
	cmd := &cobra.Command{
		Use:   "schema [--annotate] FILE|-",
		Short: "Validate cloud-config (or whole user data) against the modules' schemas",
		Long: "Validate a cloud-config file, or user data with cloud-config parts, and print each\n" +
			"problem as file:line:column with the key path and what was expected. Unknown keys\n" +
			"are warnings; type errors are errors and make the exit status 1.\n" +
			"Jinja parts are rendered first, as the boot renders them: with --imds from this\n" +
			"instance's metadata, with --instance-data from cloud-init's instance-data.json,\n" +
			"else with the IMDS simulator's example instance.\n" +
			"With --system, validate /etc/ec2init/config.yaml and conf.d under --root instead.",
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.input = args[0]
			}
			return runSchema(cmd.Context(), e, o, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.annotate, "annotate", false, "print the document with each problem beside its line")
	cmd.Flags().StringVar(&o.instanceData, "instance-data", "", "render jinja parts with this instance-data.json (cloud-init's format)")
	cmd.Flags().BoolVar(&o.useIMDS, "imds", false, "render jinja parts with this instance's metadata (IMDS)")
	cmd.MarkFlagsMutuallyExclusive("instance-data", "imds")
	cmd.Flags().BoolVar(&o.system, "system", false, "validate ec2init's own config under --root")
	return cmd
}

// runSchema validates o.input (or the system config) and prints what it
// found; an error in the input is exit status 1.
func runSchema(ctx context.Context, e *env, o schemaOptions, stdin io.Reader, out io.Writer) error {
	if o.system {
		if _, err := config.LoadSystem(e.root); err != nil {
			return err
		}
		fmt.Fprintln(out, "system config: valid")
		return nil
	}
	if o.input == "" {
		return fmt.Errorf("schema: name a file, or - for standard input")
	}
	name, data, err := readInput(stdin, o.input)
	if err != nil {
		return err
	}
	var opts agent.SchemaOptions
	switch {
	case o.instanceData != "":
		b, err := os.ReadFile(o.instanceData)
		if err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		if opts.Vars, err = agent.ReadInstanceData(b); err != nil {
			return fmt.Errorf("schema: %s: %w", o.instanceData, err)
		}
	case o.useIMDS:
		client, err := e.imdsClient(nil)
		if err != nil {
			return err
		}
		if opts.Vars, err = agent.InstanceVars(ctx, client); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	}
	docs, err := agent.ValidateInputWith(name, data, all.Registry(), opts)
	if err != nil {
		return err
	}
	configs, errors := 0, 0
	for _, d := range docs {
		if d.Body != nil {
			configs++
		}
		if o.annotate {
			writeAnnotated(out, d)
		}
		for _, diag := range d.Diagnostics {
			if diag.Severity == config.SeverityError {
				errors++
			}
			if !o.annotate {
				fmt.Fprintln(out, diag.String())
			}
		}
	}
	if errors > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("ec2init: schema: %d error(s)", errors)}
	}
	switch {
	case o.annotate:
	case configs == 0:
		fmt.Fprintf(out, "%s: valid user data (no cloud-config part to check)\n", name)
	default:
		fmt.Fprintf(out, "%s: valid cloud-config\n", name)
	}
	return nil
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
			return runModules(all.Registry(), markdown, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print docs/modules.md")
	return cmd
}

// runModules prints reg's plan as the boot runs it (agent.Plan, script
// slots included) with each module's keys, or with markdown the module
// reference (docs/modules.md).
func runModules(reg *modules.Registry, markdown bool, out io.Writer) error {
	if markdown {
		_, err := io.WriteString(out, modules.ModulesMarkdown(reg))
		return err
	}
	keys := map[string]string{}
	for _, m := range reg.All() {
		keys[m.Name()] = strings.Join(modules.KeyNames(m), ", ")
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tORDER\tMODULE\tFREQUENCY\tKEYS")
	for _, it := range agent.Plan(reg) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", it.Stage, it.Order, it.Name, it.Frequency, keys[it.Name])
	}
	return tw.Flush()
}
