package main

// `cloud-init`: the binary run under that name (argv[0]) answers as
// cloud-init's command does, with its subcommands, flags, output and exit
// codes, over ec2init's own state and cloud-init's views of it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/all"
)

// cloudInitCompatVersion is the cloud-init release whose command-line
// behaviour `cloud-init` follows (status's JSON fields, query's keys).
const cloudInitCompatVersion = "24.4"

// ciIO is where a cloud-init command reads and writes.
type ciIO struct {
	prog   string // argv[0], as argparse names the program
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// uid decides root's views (the sensitive instance data, user data).
	uid int
	now func() time.Time
}

func (c ciIO) logf(file, level, format string, a ...any) {
	fmt.Fprintf(c.stderr, "%s - %s[%s]: %s\n", c.now().Format("2006-01-02 15:04:05,000"), file, level, fmt.Sprintf(format, a...))
}

var ciSubcommands = [][2]string{
	{"init", "Initialize cloud-init and perform initial modules."},
	{"modules", "Activate modules using a given configuration key."},
	{"single", "Run a single module."},
	{"query", "Query standardized instance metadata from the command line."},
	{"features", "List defined features."},
	{"analyze", "Devel tool: Analyze cloud-init logs and data."},
	{"devel", "Run development tools."},
	{"collect-logs", "Collect and tar all cloud-init debug info."},
	{"clean", "Remove logs and artifacts so cloud-init can re-run."},
	{"status", "Report cloud-init status or wait on completion."},
	{"schema", "Validate cloud-config files using jsonschema."},
}

func ciTopParser(prog string) *ciParser {
	return &ciParser{prog: prog, subs: ciSubcommands, subDest: "subcommand", opts: []ciOpt{
		{names: []string{"--version", "-v"}, dest: "version", flag: true, help: "Show program's version number and exit."},
		{names: []string{"--debug", "-d"}, dest: "debug", flag: true, help: "Show additional pre-action logging (default: False)."},
		{names: []string{"--force"}, dest: "force", flag: true, help: "Force running even if no datasource is found (use at your own risk)."},
		{names: []string{"--all-stages"}, dest: "all_stages", flag: true, help: "Run cloud-init's stages under a single process using a synchronization protocol. This is not intended for CLI usage."},
	}}
}

// runCloudInit is `cloud-init ARGS` (argv with argv[0]).
func runCloudInit(ctx context.Context, e *env, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := ciIO{prog: argv[0], stdin: stdin, stdout: stdout, stderr: stderr, uid: os.Geteuid(), now: time.Now}
	return runCloudInitIO(ctx, e, c, argv[1:])
}

func runCloudInitIO(ctx context.Context, e *env, c ciIO, args []string) error {
	top := ciTopParser(c.prog)
	a, err := top.parse(args)
	switch {
	case err != nil:
		return ciFail(c.stderr, err)
	case a.help:
		top.writeHelp(c.stdout)
		return nil
	case a.flag("version"):
		fmt.Fprintf(c.stdout, "%s %s\n", c.prog, cloudInitCompatVersion)
		return nil
	case a.flag("all_stages"):
		// cloud-init-main.service's one process for every stage.
		return runCloudInitStage(ctx, e, c, "all")
	case len(args) == 0:
		return ciFail(c.stderr, top.errorf("a subcommand is required"))
	case a.sub == "":
		// Options but no subcommand: cloud-init's sub_main.
		fmt.Fprint(c.stdout, top.usage())
		fmt.Fprint(c.stderr, "\nNo Subcommand specified. Please specify a subcommand in addition to the option")
		return &exitError{code: 1}
	}
	sub := c
	sub.prog = c.prog + " " + a.sub
	switch a.sub {
	case "status":
		return ciStatus(ctx, e, sub, a.rest)
	case "query":
		return ciQuery(e, sub, a.rest)
	case "features":
		return ciFeatures(sub, a.rest)
	case "init", "modules":
		return ciStageCommand(ctx, e, sub, a.sub, a.rest)
	case "single":
		return ciSingle(ctx, e, sub, a.rest)
	case "clean":
		return ciClean(ctx, e, sub, a.rest)
	case "schema":
		return ciSchema(e, sub, a.rest)
	case "analyze":
		return ciAnalyze(ctx, e, sub, a.rest)
	case "devel":
		return ciDevel(e, sub, a.rest)
	case "collect-logs":
		return ciCollectLogs(e, sub, a.rest)
	}
	return ciFail(c.stderr, top.errorf("a subcommand is required"))
}

// parseSub parses a subcommand's arguments; done is true when it printed
// its help (or failed).
func parseSub(c ciIO, p *ciParser, args []string) (ciArgs, bool, error) {
	a, err := p.parse(args)
	if err != nil {
		return a, true, ciFail(c.stderr, err)
	}
	if a.help {
		p.writeHelp(c.stdout)
		return a, true, nil
	}
	return a, false, nil
}

func ciFeatures(c ciIO, args []string) error {
	p := &ciParser{prog: c.prog}
	if _, done, err := parseSub(c, p, args); done {
		return err
	}
	names := make([]string, 0, len(agentFeatures()))
	for k := range agentFeatures() {
		names = append(names, k)
	}
	sort.Strings(names)
	_, err := io.WriteString(c.stdout, strings.Join(names, "\n")+"\n")
	return err
}

func agentFeatures() map[string]any { return agent.CloudInitFeatures() }

// ciStageCommand is `init [--local]` and `modules --mode init|config|final`:
// the matching ec2init stage, run as the systemd units run it.
func ciStageCommand(ctx context.Context, e *env, c ciIO, name string, args []string) error {
	fileOpt := ciOpt{names: []string{"--file", "-f"}, dest: "files", appends: true, help: "Use additional yaml configuration files."}
	p := &ciParser{prog: c.prog, opts: []ciOpt{{names: []string{"--local", "-l"}, dest: "local", flag: true, help: "Start in local mode (default: False)."}, fileOpt}}
	if name == "modules" {
		p.opts = []ciOpt{{names: []string{"--mode", "-m"}, dest: "mode", choices: []string{"init", "config", "final"},
			help: "Module configuration name to use (default: config)."}, fileOpt}
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	if len(a.list("files")) > 0 {
		c.logf("main.py", "WARNING", "--file is not supported by ec2init; %s ignored", strings.Join(a.list("files"), ", "))
	}
	stage := "network"
	switch {
	case name == "init" && a.flag("local"):
		stage = "local"
	case name == "modules" && (a.val("mode") == "" || a.val("mode") == "config"):
		stage = "config"
	case name == "modules" && a.val("mode") == "final":
		stage = "final"
	}
	return runCloudInitStage(ctx, e, c, stage)
}

// runCloudInitStage runs ec2init's stage; exit 1 when the boot could not
// do its work or its status is an error, as cloud-init exits with its
// stage's error count.
func runCloudInitStage(ctx context.Context, e *env, c ciIO, stage string) error {
	st, err := runStages(ctx, e, bootOptions{stage: stage, identifyDeadline: 2 * time.Minute, lockTimeout: agent.DefaultLockTimeout}, c.stderr)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if st.State == state.StateError {
		return &exitError{code: 1}
	}
	return nil
}

// ciSingle is `single --name MOD [--frequency F]`: one module, through
// agent.RunModule.
func ciSingle(ctx context.Context, e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog,
		opts: []ciOpt{
			{names: []string{"--name", "-n"}, dest: "name", req: true, help: "Module name to run."},
			{names: []string{"--frequency"}, dest: "frequency", choices: []string{"instance", "always", "once"}, help: "Module frequency for this run."},
			{names: []string{"--report"}, dest: "report", flag: true, help: "Enable reporting."},
			{names: []string{"--file", "-f"}, dest: "files", appends: true, help: "Use additional yaml configuration files."},
		},
		pos: []ciPos{{name: "argument", rest: true, help: "Any additional arguments to pass to this module."}},
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	var freq state.Frequency
	switch a.val("frequency") {
	case "instance":
		freq = state.PerInstance
	case "always":
		freq = state.Always
	case "once":
		freq = state.Once
	}
	log, err := e.logger()
	if err != nil {
		return err
	}
	name := a.val("name")
	res, err := agent.RunModule(ctx, agent.Options{Root: e.root, BootID: e.bootID, Log: log, Registry: all.Registry(),
		Console: c.stderr, Version: version, LockTimeout: agent.DefaultLockTimeout}, name, freq)
	if err != nil {
		if errors.Is(err, agent.ErrNoModule) {
			mod := "cc_" + strings.TrimPrefix(strings.ReplaceAll(name, "-", "_"), "cc_")
			c.logf("modules.py", "WARNING", "Could not find module named %s (searched ['%s', 'cloudinit.config.%s'])", mod, mod, mod)
		} else {
			c.logf("main.py", "ERROR", "%v", err)
		}
		c.logf("main.py", "WARNING", "Did not run %s, does it exist?", name)
		return &exitError{code: 1}
	}
	if res.Outcome == string(state.OutcomeFailed) {
		c.logf("main.py", "WARNING", "Ran %s but it failed!", name)
		return &exitError{code: 1}
	}
	return nil
}

// ciRoot is the root prefix as a sys.Root.
func ciRoot(e *env) (*sys.Root, error) { return sys.NewRoot(e.root) }

// runCloudID is `cloud-id`: the cloud's canonical id from the instance
// data; exit 2 when disabled, 3 before any boot.
func runCloudID(e *env, argv []string, stdout, stderr io.Writer) error {
	c := ciIO{prog: argv[0], stdout: stdout, stderr: stderr, uid: os.Geteuid(), now: time.Now}
	return ciCloudID(e, c, argv[1:])
}

func ciCloudID(e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, desc: "Report the canonical cloud-id for this instance",
		opts: []ciOpt{
			{names: []string{"-j", "--json"}, dest: "json", flag: true, help: "Report all standardized cloud-id information as json."},
			{names: []string{"-l", "--long"}, dest: "long", flag: true, help: "Report extended cloud-id information as tab-delimited string."},
			{names: []string{"-i", "--instance-data"}, dest: "instance_data", help: "Path to instance-data.json file. Default is " + civiews.InstanceDataFile},
		}}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	up, _ := uptime()
	d, err := ciStatusFor(e, c.now(), up)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	switch d.running {
	case ciDisabled:
		fmt.Fprintln(c.stdout, d.running)
		return &exitError{code: 2}
	case ciNotStarted:
		fmt.Fprintln(c.stdout, d.running)
		return &exitError{code: 3}
	}
	file := a.val("instance_data")
	var raw []byte
	if file == "" {
		file = civiews.InstanceDataFile
		root, err := ciRoot(e)
		if err != nil {
			return err
		}
		raw, err = root.ReadFile(file)
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "Error:\nFile not found '%s'. Provide a path to instance data json file using --instance-data\n", file)
		return &exitError{code: 1}
	}
	var data map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		fmt.Fprintf(c.stderr, "Error:\nFile '%s' is not valid json. %v\n", file, err)
		return &exitError{code: 1}
	}
	v1, _ := data["v1"].(map[string]any)
	if v1 == nil {
		v1 = map[string]any{}
	}
	str := func(k string) string {
		if s, ok := v1[k].(string); ok && s != "" {
			return s
		}
		return "unknown"
	}
	id := ciCanonicalCloudID(str("cloud_name"), str("region"), str("platform"))
	switch {
	case a.flag("json"):
		fmt.Fprintln(c.stderr, "DEPRECATED: Use: cloud-init query v1")
		v1["cloud_id"] = id
		out, err := pyJSON(v1, " ")
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(out)
		return err
	case a.flag("long"):
		fmt.Fprintf(c.stdout, "%s\t%s\n", id, str("region"))
	default:
		fmt.Fprintln(c.stdout, id)
	}
	return nil
}

// ciCanonicalCloudID is cloud-init's canonical_cloud_id.
func ciCanonicalCloudID(cloud, region, platform string) string {
	switch {
	case cloud == "aws" && strings.HasPrefix(region, "cn-"):
		return "aws-china"
	case cloud == "aws" && strings.HasPrefix(region, "us-gov-"):
		return "aws-gov"
	case cloud == "azure" && strings.HasPrefix(region, "china"):
		return "azure-china"
	case cloud != "unknown":
		return cloud
	}
	return platform
}
