// Package aptpipelining implements cloud-init's apt_pipelining module:
// APT's Acquire::http::Pipeline-Depth set in
// /etc/apt/apt.conf.d/90cloud-init-pipelining, in cloud-init's words, on
// the distributions that use APT. Some HTTP servers (S3 among them) do
// not pipeline properly, hence false.
package aptpipelining

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// File is cloud-init's snippet, kept under its name so an image that
// moves between the two agents has one file, not two.
const File = "/etc/apt/apt.conf.d/90cloud-init-pipelining"

// AptPipelining writes the snippet once per instance.
type AptPipelining struct{}

func (AptPipelining) Name() string                 { return "apt_pipelining" }
func (AptPipelining) Stage() modules.Stage         { return modules.StageConfig }
func (AptPipelining) Frequency() modules.Frequency { return state.PerInstance }
func (AptPipelining) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Set APT's HTTP pipeline depth (Acquire::http::Pipeline-Depth) in " + File + " (Debian, Ubuntu).",
		Keys: []config.Field{{Name: "apt_pipelining", Type: config.OneOf(config.Int(), config.Bool(), config.String()), Default: "os",
			Doc: "os leaves APT's default; false disables pipelining (depth 0); 0 to 5 is the depth. none and unchanged are deprecated words for os."}},
	}
}

// action is what a value asks for.
type action int

const (
	leave   action = iota // os: APT's own default
	write                 // the depth
	invalid               // cloud-init warns and writes nothing
)

// parse reads a value as cloud-init does: its text, lower-cased and
// trimmed, is false, os (or the deprecated none, unchanged) or 0 to 5.
func parse(n *yaml.Node) (action, string) {
	if n.Kind != yaml.ScalarNode {
		return invalid, ""
	}
	if n.Tag == "!!null" {
		return leave, ""
	}
	s := strings.ToLower(strings.TrimSpace(n.Value))
	if n.Style == 0 {
		// PyYAML reads yes, no, on and off as booleans too.
		switch s {
		case "yes", "on":
			s = "true"
		case "no", "off":
			s = "false"
		}
	}
	if n.Tag == "!!int" {
		if i, err := strconv.ParseInt(s, 0, 64); err == nil {
			s = strconv.FormatInt(i, 10)
		}
	}
	switch s {
	case "false":
		return write, "0"
	case "os", "none", "unchanged":
		return leave, ""
	case "0", "1", "2", "3", "4", "5":
		return write, s
	}
	return invalid, ""
}

// Content is the snippet for depth, in cloud-init's words.
func Content(depth string) []byte {
	return []byte("//Written by cloud-init per 'apt_pipelining'\nAcquire::http::Pipeline-Depth \"" + depth + "\";\n")
}

func (AptPipelining) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	v, ok := cfg.Get("apt_pipelining")
	if !ok {
		return nil
	}
	log := env.Logger()
	act, depth := parse(v.Node)
	switch act {
	case leave:
		log.Debug("apt_pipelining: os; APT's default left alone")
		return nil
	case invalid:
		// cloud-init warns and goes on; an error says it in the status.
		return fmt.Errorf("%s:%d: apt_pipelining: want os, false or 0 to 5", v.Source, v.KeyLine)
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	if !d.IsDebianLike() {
		log.Info("apt_pipelining: not an APT distribution; nothing to do", zap.String("distro", d.String()))
		return nil
	}
	if err := env.Root.WriteFile(File, Content(depth), 0o644, nil); err != nil {
		return err
	}
	log.Info("apt pipelining set", zap.String("file", File), zap.String("depth", depth))
	return nil
}

// Check is for the schema: the values cloud-init's runtime ignores with a
// warning (true, an integer out of 0 to 5) are warnings, an unknown word
// an error, the deprecated words a warning.
func (AptPipelining) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.ScalarNode {
		return nil
	}
	diag := func(sev config.Severity, msg string) []config.Diagnostic {
		return []config.Diagnostic{{Source: source, Line: v.Line, Column: v.Column, Path: key, Severity: sev, Message: msg}}
	}
	act, _ := parse(v)
	switch {
	case act == invalid && (v.Tag == "!!bool" || v.Tag == "!!int"):
		return diag(config.SeverityWarning, "not a depth: nothing is written (want os, false or 0 to 5)")
	case act == invalid:
		return diag(config.SeverityError, "want os, false or 0 to 5")
	}
	switch strings.ToLower(strings.TrimSpace(v.Value)) {
	case "none", "unchanged":
		return diag(config.SeverityWarning, "deprecated: use os")
	}
	return nil
}
