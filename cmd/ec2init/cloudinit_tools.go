package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules/all"
)

// Files cloud-init's clean --configs removes (cloudinit/cmd/clean.py).
var (
	ciNetConfigFiles = []string{
		"/etc/netplan/50-cloud-init.yaml",
		"/etc/NetworkManager/conf.d/99-cloud-init.conf",
		"/etc/NetworkManager/conf.d/30-cloud-init-ip6-addr-gen-mode.conf",
		"/etc/NetworkManager/system-connections/cloud-init-*.nmconnection",
		"/etc/systemd/network/10-cloud-init-*.network",
		"/etc/network/interfaces.d/50-cloud-init.cfg",
	}
	// ec2init's ssh module writes cloud-init's drop-in (and once wrote
	// its own name).
	ciSSHConfigFiles = []string{"/etc/ssh/sshd_config.d/50-cloud-init.conf", "/etc/ssh/sshd_config.d/50-ec2init.conf"}
	ciLogFiles       = []string{"/var/log/cloud-init.log", "/var/log/cloud-init-output.log"}
)

// ciClean is `cloud-init clean`: ec2init's state (agent.CleanImage) and
// cloud-init's (/var/lib/cloud, but its seed without --seed), so the next
// boot is a first boot for tools of either.
func ciClean(ctx context.Context, e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, desc: "Remove logs, configs and artifacts so cloud-init re-runs on a clean system",
		opts: []ciOpt{
			{names: []string{"-l", "--logs"}, dest: "remove_logs", flag: true, help: "Remove cloud-init logs."},
			{names: []string{"--machine-id"}, dest: "machine_id", flag: true, help: "Set /etc/machine-id to 'uninitialized\\n' for golden imagecreation. On next boot, systemd generates a new machine-id. Remove /etc/machine-id on non-systemd environments."},
			{names: []string{"-r", "--reboot"}, dest: "reboot", flag: true, help: "Reboot system after logs are cleaned so cloud-init re-runs."},
			{names: []string{"-s", "--seed"}, dest: "remove_seed", flag: true, help: "Remove cloud-init seed directory /var/lib/cloud/seed."},
			{names: []string{"-c", "--configs"}, dest: "remove_config", many: true, choices: []string{"all", "ssh_config", "network", "datasource", "fstab"},
				help: "Remove cloud-init generated config files of a certain type. Config types: all, ssh_config, network"},
		},
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	root, err := ciRoot(e)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		fmt.Fprintf(c.stderr, "Error:\n%v\n", err)
		return &exitError{code: 1}
	}
	configs := a.list("remove_config")
	want := func(kind string) bool { return contains(configs, "all") || contains(configs, kind) }
	var remove []string
	if a.flag("remove_logs") {
		remove = append(remove, ciLogFiles...)
	}
	if want("network") {
		remove = append(remove, ciNetConfigFiles...)
	}
	if want("ssh_config") {
		remove = append(remove, ciSSHConfigFiles...)
	}
	for _, pattern := range remove {
		if err := removeGlob(root, pattern); err != nil {
			return fail(err)
		}
	}
	if want("fstab") {
		if err := cleanFstab(root); err != nil {
			return fail(err)
		}
	}
	if _, err := agent.CleanImage(ctx, root, agent.CleanWhat{Logs: a.flag("remove_logs"), Seed: a.flag("remove_seed")}); err != nil {
		return fail(err)
	}
	if _, err := civiews.Clean(root, a.flag("remove_seed")); err != nil {
		return fail(fmt.Errorf("Could not remove %w", err))
	}
	if a.flag("machine_id") {
		// systemd makes a new id on the next boot (v237 and later).
		if err := root.WriteFile(state.MachineIDFile, []byte("uninitialized\n"), 0o444, nil); err != nil {
			return fail(err)
		}
	}
	if a.flag("reboot") {
		if !root.IsHost() {
			c.logf("clean.py", "WARNING", "not rebooting: the root is %s, not this system", root.Prefix())
			return nil
		}
		if out, err := exec.CommandContext(ctx, "shutdown", "-r", "now").CombinedOutput(); err != nil {
			return fail(fmt.Errorf(`Could not reboot this system using "['shutdown', '-r', 'now']": %v %s`, err, out))
		}
	}
	return nil
}

// removeGlob removes the files pattern names under root.
func removeGlob(root *sys.Root, pattern string) error {
	if !strings.ContainsAny(pattern, "*?[") {
		return root.Remove(pattern)
	}
	entries, err := root.ReadDir(path.Dir(pattern))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, en := range entries {
		if ok, _ := path.Match(path.Base(pattern), en.Name()); ok {
			if err := root.Remove(path.Join(path.Dir(pattern), en.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanFstab drops the lines mounts wrote (comment=cloudconfig) from
// /etc/fstab, as cc_mounts.cleanup_fstab.
func cleanFstab(root *sys.Root) error {
	b, err := root.ReadFile("/etc/fstab")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []string
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if !strings.Contains(l, "comment=cloudconfig") {
			keep = append(keep, l)
		}
	}
	if len(keep) == len(lines) {
		return nil
	}
	fi, err := root.Stat("/etc/fstab")
	if err != nil {
		return err
	}
	return root.WriteFile("/etc/fstab", []byte(strings.Join(keep, "")), fi.Mode().Perm(), nil)
}

// ciSchema is `cloud-init schema`: ec2init's schemas (the modules'),
// with cloud-init's arguments and messages.
func ciSchema(e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog,
		desc: "Schema validation and documentation of instance-data configuration provided to cloud-init. This includes: user-data, vendor-data and network-config",
		opts: []ciOpt{
			{names: []string{"-c", "--config-file"}, dest: "config_file", help: "Path of the cloud-config or network-config YAML file to validate"},
			{names: []string{"-t", "--schema-type"}, dest: "schema_type", choices: []string{"cloud-config", "network-config"},
				help: "When providing --config-file, the schema type to validate config against. Default: cloud-config"},
			{names: []string{"-i", "--instance-data"}, dest: "instance_data", help: "Path to instance-data.json file for variable expansion of '##template: jinja' user-data. Default: " + civiews.InstanceDataFile},
			{names: []string{"--system"}, dest: "system", flag: true, help: "Validate the system instance-data provided as vendor-data user-data and network-config"},
			{names: []string{"--annotate"}, dest: "annotate", flag: true, help: "Annotate existing instance-data files any discovered errors"},
		},
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	errorf := func(format string, v ...any) error {
		fmt.Fprintf(c.stderr, format, v...)
		return &exitError{code: 1}
	}
	file, system := a.val("config_file"), a.flag("system")
	if (file == "") == !system {
		return errorf("Error:\nExpected one of --config-file or --system arguments\n")
	}
	if system && a.has("schema_type") {
		fmt.Fprintln(c.stdout, "WARNING: The --schema-type parameter is inapplicable when --system is present")
	}
	if a.val("schema_type") == "network-config" {
		return errorf("Error: ec2init does not render network config: no network-config schema\n")
	}
	label, name := "user-data", file
	var data []byte
	if system {
		if c.uid != 0 {
			return errorf("Error:\nUnable to read system userdata or vendordata as non-root user. Try using sudo.\n")
		}
		root, err := ciRoot(e)
		if err != nil {
			return err
		}
		name = ciUserDataTxt
		data, err = root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return errorf("Error: Config file %s does not exist\n", name)
		}
		if err != nil {
			return errorf("Error: %v\n", err)
		}
	} else {
		data, err = os.ReadFile(file)
		if err != nil {
			return errorf("Error: Config file %s does not exist\n", file)
		}
	}
	docs, err := agent.ValidateInput(name, data, all.Registry())
	if err != nil {
		if system && strings.Contains(err.Error(), "no cloud-config") {
			return nil // cloud-init validates only cloud-config user data
		}
		fmt.Fprintf(c.stdout, "Invalid %s %s\n", label, name)
		return errorf("Error: %v\n\nError: Invalid schema: %s\n\n", err, label)
	}
	var problems []string
	for _, d := range docs {
		if a.flag("annotate") {
			writeAnnotated(c.stdout, d)
		}
		for _, diag := range d.Diagnostics {
			if diag.Severity == config.SeverityError {
				problems = append(problems, diag.String())
			}
		}
	}
	if len(problems) > 0 {
		if !a.flag("annotate") {
			fmt.Fprintf(c.stdout, "Invalid %s %s\n", label, name)
			fmt.Fprintf(c.stderr, "Error: Cloud config schema errors: %s\n\n", strings.Join(problems, ", "))
		}
		return errorf("Error: Invalid schema: %s\n\n", label)
	}
	if system {
		name = label
	}
	if !a.flag("annotate") {
		fmt.Fprintf(c.stdout, "Valid schema %s\n", name)
	}
	return nil
}

// ciContentTypes are the part types cloud-init's make-mime knows
// (INCLUSION_TYPES_MAP's), sorted.
var ciContentTypes = []string{
	"text/cloud-boothook", "text/cloud-config", "text/cloud-config-archive", "text/cloud-config-jsonp",
	"text/jinja2", "text/part-handler", "text/x-include-once-url", "text/x-include-url", "text/x-shellscript",
	"text/x-shellscript-per-boot", "text/x-shellscript-per-instance", "text/x-shellscript-per-once",
}

// ciDevel is `cloud-init devel make-mime`; `devel schema` is schema.
func ciDevel(e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, subDest: "subcommand", subs: [][2]string{
		{"hotplug-hook", "Handle hotplug events."},
		{"schema", "Validate cloud-config files using jsonschema."},
		{"net-convert", "Convert networking configuration formats."},
		{"render", "Render a jinja template with instance-data."},
		{"make-mime", "Generate multi-part mime messages for user-data."},
	}}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	sub := c
	sub.prog = c.prog + " " + a.sub
	switch a.sub {
	case "":
		return ciFail(c.stderr, p.errorf("the following arguments are required: subcommand"))
	case "make-mime":
		return ciMakeMime(sub, a.rest)
	case "schema":
		return ciSchema(e, sub, a.rest)
	case "render":
		return ciRender(e, sub, a.rest)
	}
	fmt.Fprintf(c.stderr, "%s: not supported by ec2init\n", sub.prog)
	return &exitError{code: 1}
}

// ciMakeMime writes the files as a MIME multipart message as
// cloud-init's make-mime does (Python's email package: utf-8 parts,
// base64 bodies).
func ciMakeMime(c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, desc: "Generate multi-part mime messages for user-data.",
		opts: []ciOpt{
			{names: []string{"-a", "--attach"}, dest: "files", appends: true, metavar: "<file>:<content-type>", help: "attach the given file as the specified content-type"},
			{names: []string{"-l", "--list-types"}, dest: "list_types", flag: true, help: "List support cloud-init content types."},
			{names: []string{"-f", "--force"}, dest: "force", flag: true, help: "Ignore unknown content-type warnings"},
		},
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	if a.flag("list_types") {
		for _, t := range ciContentTypes {
			fmt.Fprintln(c.stdout, strings.TrimPrefix(t, "text/"))
		}
		return nil
	}
	var parts []mimePart
	for _, spec := range a.list("files") {
		file, ctype, ok := strings.Cut(spec, ":")
		if !ok {
			return ciFail(c.stderr, p.errorf("argument -a/--attach: Invalid value for '%s'", spec))
		}
		body, err := os.ReadFile(file)
		if err != nil {
			return ciFail(c.stderr, p.errorf("argument -a/--attach: %v", err))
		}
		parts = append(parts, mimePart{filename: file, ctype: strings.TrimSpace(ctype), body: body})
	}
	var bad []string
	for i, pt := range parts {
		if ct := "text/" + strings.ToLower(pt.ctype); !contains(ciContentTypes, ct) {
			bad = append(bad, fmt.Sprintf("content type '%s' for attachment %d may be incorrect!", ct, i+1))
		}
	}
	if len(bad) > 0 {
		level := "ERROR"
		if a.flag("force") {
			level = "WARNING"
		}
		for _, b := range bad {
			fmt.Fprintf(c.stderr, "%s: %s\n", level, b)
		}
		fmt.Fprintln(c.stderr, "Invalid content-types, override with --force")
		if !a.flag("force") {
			return &exitError{code: 1}
		}
	}
	msg, err := makeMIME(parts)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, msg)
	return err
}

type mimePart struct {
	filename, ctype string
	body            []byte
}

// makeMIME is Python's str(MIMEMultipart()) of MIMEText parts with
// charset utf-8: a random "===============N==" boundary, base64 bodies in
// 76-column lines.
func makeMIME(parts []mimePart) (string, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(19), nil))
	if err != nil {
		return "", err
	}
	boundary := fmt.Sprintf("===============%019d==", n)
	var b strings.Builder
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\nMIME-Version: 1.0\n\n", boundary)
	for _, pt := range parts {
		fmt.Fprintf(&b, "--%s\n", boundary)
		fmt.Fprintf(&b, "Content-Type: text/%s; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n", pt.ctype)
		fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\n\n", pt.filename)
		enc := base64.StdEncoding.EncodeToString(pt.body)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		if enc != "" {
			b.WriteString(enc + "\n")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "--%s--\n", boundary)
	return b.String(), nil
}

// ciCollectLogs is `cloud-init collect-logs`: a tar.gz of ec2init's and
// cloud-init's logs, status and instance data. The user data, the output
// log and the sensitive instance data only with --include-userdata: they
// can hold secrets, and the tarball is made to be shared.
func ciCollectLogs(e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, desc: "Collect and tar all cloud-init debug info",
		opts: []ciOpt{
			{names: []string{"--verbose", "-v"}, dest: "verbosity", flag: true, help: "Be more verbose."},
			{names: []string{"--tarfile", "-t"}, dest: "tarfile", help: "The tarfile to create containing all collected logs. Default: cloud-init.tar.gz"},
			{names: []string{"--include-userdata", "-u"}, dest: "userdata", flag: true, help: "Optionally include user-data from " + ciUserDataTxt + " which could contain sensitive information."},
			{names: []string{"--redact-sensitive", "-r"}, dest: "redact", flag: true, help: "Redact potentially sensitive data from logs (the default without --include-userdata)."},
		},
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	if c.uid != 0 {
		fmt.Fprintln(c.stderr, "This command must be run as root.")
		return &exitError{code: 1}
	}
	root, err := ciRoot(e)
	if err != nil {
		return err
	}
	tarfile := a.val("tarfile")
	if tarfile == "" {
		tarfile = "cloud-init.tar.gz"
	}
	if tarfile, err = filepath.Abs(tarfile); err != nil {
		return err
	}
	files := []string{
		state.LogFile, ciLogFiles[0],
		agent.RunStatusFile, civiews.RunStatusLink, civiews.RunResultLink, civiews.InstanceDataFile, civiews.CloudIDFile,
		civiews.StatusFile, civiews.ResultFile, civiews.InstanceIDFile, civiews.PreviousIDFile,
		"/etc/ec2init/config.yaml",
	}
	if a.flag("userdata") && !a.flag("redact") {
		files = append(files, state.OutputLogFile, ciLogFiles[1], ciUserDataTxt, civiews.InstanceDataSensitiveFile, agent.RunStatusFullFile)
	}
	dir := c.now().UTC().Format("cloud-init-logs-2006-01-02")
	extra := map[string][]byte{"version": []byte(fmt.Sprintf("ec2init %s (cloud-init %s)\n", version, cloudInitCompatVersion))}
	var status strings.Builder
	sc := c
	sc.stdout, sc.stderr = &status, &status
	_ = ciStatus(context.Background(), e, sc, []string{"--long"})
	extra["cloud-init-status.txt"] = []byte(status.String())
	if err := writeLogTarball(root, tarfile, dir, files, extra, c.now()); err != nil {
		fmt.Fprintln(c.stderr, err)
		return &exitError{code: 1}
	}
	if a.flag("verbosity") {
		fmt.Fprintf(c.stderr, "Wrote %s\n", tarfile)
	}
	return nil
}

// writeLogTarball writes dir/<path> for every file that exists under
// root, and dir/<name> for extra, to a gzip'd tar at out (0600: it may
// hold root's files).
func writeLogTarball(root *sys.Root, out, dir string, files []string, extra map[string][]byte, now time.Time) error {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	add := func(name string, body []byte, mode int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: dir + "/", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for _, p := range files {
		body, err := root.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("collect %s: %w", p, err)
		}
		if err := add(dir+p, body, 0o600); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(extra))
	for k := range extra {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := add(dir+"/"+n, extra[n], 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// ciRender is `cloud-init devel render`: a "## template: jinja" file
// rendered with the instance data, in the user data's sandbox.
func ciRender(e *env, c ciIO, args []string) error {
	p := &ciParser{prog: c.prog, desc: "Debug jinja template rendering of user-data.",
		opts: []ciOpt{
			{names: []string{"-i", "--instance-data"}, dest: "instance_data", help: "Optional path to instance-data.json file. Defaults to " + civiews.RunDir},
			{names: []string{"-d", "--debug"}, dest: "debug", flag: true, help: "Add verbose messages during template render"},
		},
		pos: []ciPos{{name: "user_data", help: "Path to the user-data file to render"}},
	}
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	root, err := ciRoot(e)
	if err != nil {
		return err
	}
	file, given := a.val("instance_data"), a.val("instance_data") != ""
	if !given {
		file = civiews.InstanceDataFile
		if c.uid == 0 {
			if ok, _ := root.Exists(civiews.InstanceDataSensitiveFile); ok {
				file = civiews.InstanceDataSensitiveFile
			} else {
				c.logf("render.py", "WARNING", "Missing root-readable %s. Using redacted %s instead.", civiews.InstanceDataSensitiveFile, civiews.InstanceDataFile)
			}
		}
	}
	var raw []byte
	if given {
		raw, err = os.ReadFile(file)
	} else {
		raw, err = root.ReadFile(file)
	}
	if err != nil {
		c.logf("render.py", "ERROR", "Missing instance-data.json file: %s", file)
		return &exitError{code: 1}
	}
	vars, err := agent.ReadInstanceData(raw)
	if err != nil {
		c.logf("render.py", "ERROR", "%v", err)
		return &exitError{code: 1}
	}
	udFile := a.first("user_data")
	body, err := os.ReadFile(udFile)
	if err != nil {
		c.logf("render.py", "ERROR", "Missing user-data file: %s", udFile)
		return &exitError{code: 1}
	}
	first, _, _ := strings.Cut(strings.TrimLeft(string(body), " \t\r\n"), "\n")
	if !ciJinjaHeader().MatchString(strings.TrimSpace(first)) {
		c.logf("render.py", "ERROR", "Cannot render from instance data due to exception: NotJinjaError('Could not render non-jinja payload \\'%s\\'')", udFile)
		return &exitError{code: 1}
	}
	res, err := userdata.Parse(body, userdata.Options{Vars: vars})
	if err != nil {
		c.logf("render.py", "ERROR", "Failed to render templated user-data file '%s'. %v", udFile, err)
		return &exitError{code: 1}
	}
	if len(res.Parts) == 0 || len(res.Parts[0].Body) == 0 {
		c.logf("render.py", "ERROR", "Unable to render user-data file: %s", udFile)
		return &exitError{code: 1}
	}
	_, err = c.stdout.Write(res.Parts[0].Body)
	return err
}

var ciJinjaHeader = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)^##\s*template:\s*jinja$`) })
