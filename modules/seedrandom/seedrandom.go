// Package seedrandom implements cloud-init's seed_random module: the
// cloud-config's random_seed.data is appended to a file (the kernel's
// /dev/urandom by default) and random_seed.command runs with
// RANDOM_SEED_FILE naming it. EC2's metadata has no random_seed (only
// OpenStack's and Azure's do), so there is no seed from IMDS.
package seedrandom

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// DefaultFile is where the seed goes without random_seed.file.
const DefaultFile = "/dev/urandom"

// maxSeed caps a gzip seed once decompressed.
const maxSeed = 16 << 20

const cmdTimeout = 5 * time.Minute

// SeedRandom adds the seed once per instance.
type SeedRandom struct{}

func (SeedRandom) Name() string                 { return "seed_random" }
func (SeedRandom) Stage() modules.Stage         { return modules.StageNetwork }
func (SeedRandom) Frequency() modules.Frequency { return state.PerInstance }
func (SeedRandom) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Add entropy from the cloud-config to the kernel's pool (or a file), and run a seeding command.",
		Keys: []config.Field{{Name: "random_seed", Type: config.Object(
			config.Field{Name: "file", Type: config.String(), Default: DefaultFile, Doc: "The file data is appended to."},
			config.Field{Name: "data", Type: config.String(), Doc: "The seed, encoded as encoding says."},
			config.Field{Name: "encoding", Type: config.Enum("raw", "base64", "b64", "gzip", "gz"), Default: "raw",
				Doc: "How data is encoded; gzip data is base64 of the compressed bytes when the YAML cannot hold binary."},
			config.Field{Name: "command", Type: config.ListOf(config.String()),
				Doc: "A command (argv) run after the seed is written, with RANDOM_SEED_FILE set to file."},
			config.Field{Name: "command_required", Type: config.Bool(), Default: "false",
				Doc: "true fails the module when command is empty or not installed."},
		)}},
	}
}

type settings struct {
	File            string   `yaml:"file"`
	Data            string   `yaml:"data"`
	Encoding        string   `yaml:"encoding"`
	Command         []string `yaml:"command"`
	CommandRequired bool     `yaml:"command_required"`
}

func (SeedRandom) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if _, err := cfg.Decode("random_seed", &s); err != nil {
		return err
	}
	if s.File == "" {
		s.File = DefaultFile
	}
	log := env.Logger()
	seed, err := decode(s.Data, s.Encoding)
	if err != nil {
		return err
	}
	switch {
	case len(seed) == 0:
	case !env.Root.IsHost() && strings.HasPrefix(s.File, "/dev/"):
		// The kernel's pool is the running system's: a file under the
		// root's /dev would only be a stray copy of the seed.
		log.Warn("seed_random: seed not written under a --root prefix", zap.String("file", s.File))
	default:
		// Appended, as cloud-init does: on /dev/urandom a write mixes the
		// bytes into the pool, in a file it keeps what was there.
		if err := appendSeed(env.Root, s.File, seed); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		log.Info("random seed added", zap.String("file", s.File), zap.Int("bytes", len(seed)))
	}
	return runCommand(ctx, env, s)
}

// appendSeed appends to a regular file through the root, and writes a
// character device (/dev/urandom) in place: Root.AppendFile would create
// and fsync, which a device refuses.
func appendSeed(root *sys.Root, p string, seed []byte) error {
	if fi, err := root.Stat(p); err == nil && fi.Mode()&fs.ModeCharDevice != 0 {
		full, err := root.Path(p)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write(seed); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", p, err)
		}
		return f.Close()
	}
	return root.AppendFile(p, seed, 0o600)
}

func decode(data, encoding string) ([]byte, error) {
	if data == "" {
		return nil, nil
	}
	switch strings.ToLower(encoding) {
	case "", "raw":
		return []byte(data), nil
	case "base64", "b64":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(data), ""))
		if err != nil {
			return nil, fmt.Errorf("random_seed.data: not base64: %w", err)
		}
		return b, nil
	case "gzip", "gz":
		raw := []byte(data)
		// YAML holds binary as !!binary (decoded to bytes already) or
		// the user wrote base64 of the gzip stream.
		if b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(data), "")); err == nil {
			raw = b
		}
		b, err := bounded.Gunzip(raw, maxSeed, "random_seed.data")
		if err != nil {
			return nil, fmt.Errorf("random_seed.data: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("random_seed.encoding %q: want raw, base64, b64, gzip or gz", encoding)
}

func runCommand(ctx context.Context, env *modules.Env, s settings) error {
	log := env.Logger()
	if len(s.Command) == 0 {
		if s.CommandRequired {
			return errors.New("random_seed.command_required is true but there is no command")
		}
		return nil
	}
	var out bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "random_seed.command", Argv: s.Command, Output: &out, Timeout: cmdTimeout,
		Env: map[string]string{"RANDOM_SEED_FILE": s.File}})
	if errors.Is(err, exec.ErrNotFound) && !s.CommandRequired {
		log.Info("seed_random: command not installed; skipped (command_required is false)", zap.String("command", s.Command[0]))
		return nil
	}
	if err != nil {
		return fmt.Errorf("random_seed.command: %w", err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("random_seed.command %s exited %d: %s", s.Command[0], res.ExitCode, strings.TrimSpace(out.String()))
	}
	return nil
}

// Check is for the schema: a command_required without a command fails
// at boot, say so before.
func (SeedRandom) Check(source, key string, v *yaml.Node) []config.Diagnostic {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var req *yaml.Node
	hasCmd := false
	for i := 0; i+1 < len(v.Content); i += 2 {
		switch v.Content[i].Value {
		case "command_required":
			req = v.Content[i+1]
		case "command":
			hasCmd = len(v.Content[i+1].Content) > 0
		}
	}
	if req != nil && !hasCmd {
		if b, err := config.ParseBool(req.Value); err == nil && b {
			return []config.Diagnostic{{Source: source, Line: req.Line, Column: req.Column, Path: key + ".command_required",
				Severity: config.SeverityError, Message: "true needs a command"}}
		}
	}
	return nil
}
