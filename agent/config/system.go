// Package config loads ec2init's own configuration: /etc/ec2init/config.yaml
// and /etc/ec2init/conf.d/*.yaml, merged in that order (later files win,
// key by key). Unknown keys and wrong types are errors that name the file
// and line, so a typo never silently changes behaviour.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gopkg.in/yaml.v3"
)

// Default locations, relative to the root prefix.
const (
	SystemFile = "/etc/ec2init/config.yaml"
	SystemDir  = "/etc/ec2init/conf.d"
)

// System is ec2init's own configuration.
type System struct {
	IMDS        IMDS        `yaml:"imds"`
	Daemon      Daemon      `yaml:"daemon"`
	SSH         SSH         `yaml:"ssh"`
	DefaultUser DefaultUser `yaml:"default_user"`
}

// DefaultUser overrides the distribution's default user (ec2-user on
// Amazon Linux, admin on Debian): the user the instance's key pair goes to
// and "default" in a cloud-config's users list means. Empty fields keep
// the distribution's value.
type DefaultUser struct {
	Name       string   `yaml:"name"`
	Gecos      string   `yaml:"gecos"`
	Groups     []string `yaml:"groups"`
	Sudo       []string `yaml:"sudo"`
	Shell      string   `yaml:"shell"`
	LockPasswd *bool    `yaml:"lock_passwd"`
}

// SSH configures the ssh module's handling of a new instance.
type SSH struct {
	// KeepPreviousInstanceKeys is "remove" (default) or "keep": whether
	// the key pair installed for the instance this disk ran as before stays
	// in authorized_keys on a new instance (an AMI of it). Keys added by
	// hand always stay.
	KeepPreviousInstanceKeys string `yaml:"keep_previous_instance_keys"`
}

// Daemon configures the watcher that runs after boot.
type Daemon struct {
	// Interval between IMDS polls (default 5s, plus jitter).
	Interval Duration `yaml:"interval"`
	// MaxEvents is how many event records /run/ec2init/events keeps, the
	// newest (default 1000); older ones are removed as new ones come.
	MaxEvents int `yaml:"max_events"`
	// Hooks are commands per event (spot_interruption,
	// rebalance_recommendation, scheduled_maintenance,
	// autoscaling_lifecycle, tags_changed, network_interfaces_changed).
	Hooks map[string][]Command `yaml:"hooks"`
}

// Command is argv: a YAML list runs as given, a string runs with sh -c
// (the user wrote shell).
type Command []string

// UnmarshalYAML accepts a string or a list of words.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*c = Command{"/bin/sh", "-c", n.Value}
		return nil
	case yaml.SequenceNode:
		var argv []string
		if err := n.Decode(&argv); err != nil {
			return err
		}
		if len(argv) == 0 {
			return fmt.Errorf("line %d: empty command", n.Line)
		}
		*c = argv
		return nil
	}
	return fmt.Errorf("line %d: a command is a string or a list of words", n.Line)
}

// IMDS configures the metadata client (see agent/imds.Config).
type IMDS struct {
	Endpoint     string `yaml:"endpoint"`
	EndpointMode string `yaml:"endpoint_mode"`
	// AllowIMDSv1 permits the token-less fallback; off by default.
	AllowIMDSv1    bool     `yaml:"allow_imdsv1"`
	RequestTimeout Duration `yaml:"request_timeout"`
	CallTimeout    Duration `yaml:"call_timeout"`
	MaxAttempts    int      `yaml:"max_attempts"`
	// Deadline bounds identifying the instance at boot, which may wait for
	// the network to come up.
	Deadline Duration `yaml:"deadline"`
}

// Duration is a time.Duration written as "1.5s" or "250ms" in YAML.
type Duration time.Duration

// UnmarshalYAML accepts Go duration strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// The value is not quoted: a misplaced secret must not reach a log.
		return fmt.Errorf("line %d: not a duration (e.g. 500ms, 2s, 1m)", n.Line)
	}
	*d = Duration(v)
	return nil
}

// LoadSystem reads the system config under root. Missing files are fine:
// every setting has a default. Beneath ec2init's own files lie the
// settings of cloud-init's system configuration ec2init honours
// (ReadCloudInitSystem: /etc/cloud's datasource.Ec2 and
// system_info.default_user): an image made for cloud-init keeps them, and
// ec2init's files override them field by field.
func LoadSystem(root string) (System, error) {
	ci := ReadCloudInitSystem(root)
	sys := System{IMDS: ci.IMDS, DefaultUser: ci.DefaultUser}
	files := []string{filepath.Join(root, SystemFile)}
	more, err := filepath.Glob(filepath.Join(root, SystemDir, "*.yaml"))
	if err != nil {
		return sys, fmt.Errorf("config: %w", err)
	}
	sort.Strings(more)
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return sys, fmt.Errorf("config: %w", err)
		}
		if err := decodeStrict(data, &sys); err != nil {
			return sys, fmt.Errorf("config %s: %w", f, err)
		}
	}
	return sys, nil
}

// decodeStrict decodes YAML onto v, refusing unknown keys. An empty file
// or a file of comments is no change.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
