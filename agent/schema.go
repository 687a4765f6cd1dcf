package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
)

// CheckedDoc is one cloud-config document of an input and what validation
// found in it.
type CheckedDoc struct {
	Source      string
	Body        []byte
	Diagnostics []config.Diagnostic
	// Err is the document's parse error, when it has one (then also its
	// one diagnostic).
	Err error
}

// SchemaOptions say how ValidateInputWith reads its input.
type SchemaOptions struct {
	// Vars is the instance data "## template: jinja" parts render with, as
	// the boot renders them (InstanceVars, or cloud-init's
	// instance-data.json); nil renders with none, every variable undefined.
	Vars userdata.Vars
}

// ValidateInput validates a cloud-config file, or whole user data (every
// cloud-config part of it), against the modules' schemas — what `ec2init
// schema` and the boot both use, so they report the same messages.
func ValidateInput(name string, data []byte, reg *modules.Registry) ([]CheckedDoc, error) {
	return ValidateInputWith(name, data, reg, SchemaOptions{})
}

// ValidateInputWith is ValidateInput with jinja parts rendered from
// opts.Vars, so validation sees what the boot would: a template that
// cannot be rendered (the boot skips that part) is an error, an undefined
// variable a warning. What the boot would ignore as user data (no
// recognised header, not a YAML mapping: TOML, PowerShell) is an error,
// not YAML to validate. Problems about the user data as a whole come as a
// first CheckedDoc with no Body.
func ValidateInputWith(name string, data []byte, reg *modules.Registry, opts SchemaOptions) ([]CheckedDoc, error) {
	srcs, notes, err := inputSources(name, data, opts.Vars)
	if err != nil {
		return nil, err
	}
	var out []CheckedDoc
	if len(notes) > 0 {
		out = append(out, CheckedDoc{Source: name, Diagnostics: notes})
	}
	for _, src := range srcs {
		c, _, _ := checkDoc(src, reg)
		out = append(out, c)
	}
	return out, nil
}

// InputSources splits an input into its cloud-config documents: every
// cloud-config part of user data, or a bare YAML file as one document.
// Jinja parts are not rendered.
func InputSources(name string, data []byte) ([]ConfigSource, error) {
	trimmed := bytes.TrimLeft(data, "\ufeff \t\r\n")
	if !looksLikeUserData(trimmed) {
		return []ConfigSource{{Name: name, Body: data}}, nil
	}
	res, err := userdata.Parse(data, userdata.Options{})
	if err != nil {
		return nil, err
	}
	srcs := configSources(name, res)
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%s: no cloud-config in this user data", name)
	}
	return srcs, nil
}

// inputSources is InputSources for validation: jinja parts rendered with
// vars (none: the simulator's example instance), the parser's warnings as
// diagnostics, and input that is not user data told apart from a bare
// cloud-config file.
func inputSources(name string, data []byte, vars userdata.Vars) ([]ConfigSource, []config.Diagnostic, error) {
	trimmed := bytes.TrimLeft(data, "\ufeff \t\r\n")
	if !looksLikeUserData(trimmed) {
		return bareSources(name, data)
	}
	res, err := userdata.Parse(data, userdata.Options{Vars: vars})
	if err != nil {
		return nil, nil, err
	}
	var notes []config.Diagnostic
	if vars == nil && hasTemplates(res) {
		// No instance given: the simulator's example instance, so a
		// template that reads v1.* renders as it would on EC2.
		sample, err := SampleInstanceVars(context.Background())
		if err != nil {
			sample = userdata.VarsMap{}
		}
		if res, err = res.Render(sample); err != nil {
			return nil, nil, err
		}
		notes = append(notes, config.Diagnostic{Source: name, Line: 1, Column: 1, Path: "user data", Severity: config.SeverityInfo,
			Message: "jinja rendered with the IMDS simulator's example instance (--imds or --instance-data for this instance's)"})
	}
	for _, w := range res.Warnings {
		sev := config.SeverityWarning
		if w.Code == userdata.WarnTemplate {
			sev = config.SeverityError // the boot would not run that part
		}
		notes = append(notes, config.Diagnostic{Source: name, Line: 1, Column: 1, Path: "user data", Severity: sev,
			Message: strings.TrimPrefix(w.String(), "user data: ")})
	}
	return configSources(name, res), notes, nil
}

// bareSources reads input with no user-data header: a YAML mapping is a
// cloud-config file (an image's cloud.cfg.d file needs no header; as user
// data it would be ignored, which a warning says); anything else is not
// cloud-config at all.
func bareSources(name string, data []byte) ([]ConfigSource, []config.Diagnostic, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		n := &root
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			n = n.Content[0]
		}
		if n.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("%s: not cloud-config (no #cloud-config header, and not a YAML mapping): "+
				"as user data, cloud-init and ec2init would ignore it", name)
		}
	} // a YAML error is reported by the validation, with its line
	var notes []config.Diagnostic
	if !isImageConfigName(name) {
		notes = append(notes, config.Diagnostic{Source: name, Line: 1, Column: 1, Path: "user data", Severity: config.SeverityWarning,
			Message: "no #cloud-config first line: fine for an image config file (cloud.cfg.d), but as user data cloud-init and ec2init would ignore it"})
	}
	return []ConfigSource{{Name: name, Body: data}}, notes, nil
}

// isImageConfigName: files cloud-init and ec2init read as configuration,
// never as user data.
func isImageConfigName(name string) bool {
	base := path.Base(name)
	return strings.HasSuffix(base, ".cfg") || base == "config.yaml" || strings.Contains(name, "cloud.cfg.d/") || strings.Contains(name, "conf.d/")
}

func configSources(name string, res *userdata.Result) []ConfigSource {
	var parts []userdata.Part
	for _, p := range res.Parts {
		if p.Kind == userdata.KindCloudConfig {
			parts = append(parts, p)
		}
	}
	out := make([]ConfigSource, 0, len(parts))
	for _, p := range parts {
		source := name
		if p.Index >= 0 && len(parts) > 1 || p.Filename != "" && p.Index > 0 {
			source = fmt.Sprintf("%s part %d %q", name, p.Index, p.Filename)
		}
		out = append(out, ConfigSource{Name: source, Body: p.Body})
	}
	return out
}

func looksLikeUserData(b []byte) bool {
	for _, prefix := range []string{"#cloud-config", "#!", "#include", "#cloud-boothook", "#cloud-config-archive", "## template:", "Content-Type:", "MIME-Version:", "\x1f\x8b"} {
		if bytes.HasPrefix(b, []byte(prefix)) {
			return true
		}
	}
	return false
}

// InstanceVars is the instance data jinja parts see on this instance (the
// boot's, from IMDS), for validation that renders as the boot does.
func InstanceVars(ctx context.Context, client *imds.Client) (userdata.Vars, error) {
	in, tree, err := client.InstanceTree(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("instance metadata: %w", err)
	}
	var si SysInfo
	if host, err := sys.NewRoot("/"); err == nil {
		si = ReadSysInfo(host)
	}
	vars := JinjaVars(InstanceDataInput{Instance: in, Sys: si, Endpoint: client.Endpoint(),
		Crawled: MaterializeMetaData(tree), SystemConfig: map[string]any{}})
	withEC2InitV1(vars, in)
	return vars, nil
}

// SampleInstanceVars is the instance data of the built-in IMDS simulator's
// example instance, served on loopback for the call's length.
func SampleInstanceVars(ctx context.Context) (userdata.Vars, error) {
	sim := imdssim.New(imdssim.Options{})
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	client, err := imds.New(imds.Config{Endpoint: url, MaxAttempts: 1, RequestTimeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	return InstanceVars(ctx, client)
}

func hasTemplates(res *userdata.Result) bool {
	for _, p := range res.Parts {
		if p.Kind == userdata.KindJinja {
			return true
		}
	}
	return false
}

// ReadInstanceData reads cloud-init's instance-data.json (or ec2init's
// /run/cloud-init copy of it) as template variables.
func ReadInstanceData(data []byte) (userdata.Vars, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("instance data: %w", err)
	}
	return userdata.VarsMap(m), nil
}
