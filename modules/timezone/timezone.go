// Package timezone implements cloud-init's timezone module: /etc/localtime
// becomes a link to the zone's file in /usr/share/zoneinfo (as
// timedatectl makes it) and, on Debian-likes, /etc/timezone names it.
package timezone

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Paths (host paths under the root).
const (
	ZoneinfoDir   = "/usr/share/zoneinfo"
	LocaltimeFile = "/etc/localtime"
	TimezoneFile  = "/etc/timezone"
)

// Timezone sets the time zone once per instance.
type Timezone struct{}

func (Timezone) Name() string                 { return "timezone" }
func (Timezone) Stage() modules.Stage         { return modules.StageConfig }
func (Timezone) Frequency() modules.Frequency { return state.PerInstance }
func (Timezone) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Set the system time zone.",
		Keys: []config.Field{{Name: "timezone", Type: config.String(),
			Doc: "A zone of the tz database, e.g. Europe/Berlin or UTC: a file under /usr/share/zoneinfo."}},
	}
}

func (Timezone) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	v, ok := cfg.Get("timezone")
	if !ok || v.Node.Tag == "!!null" {
		return nil
	}
	if v.Node.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s:%d: timezone: expected a string", v.Source, v.KeyLine)
	}
	tz := strings.TrimSpace(v.Node.Value)
	if err := check(env.Root, tz); err != nil {
		return fmt.Errorf("%s:%d: timezone: %w", v.Source, v.KeyLine, err)
	}
	if err := link(env.Root, tz); err != nil {
		return fmt.Errorf("timezone %q: %w", tz, err)
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	if d.IsDebianLike() {
		if err := env.Root.WriteFile(TimezoneFile, []byte(tz+"\n"), 0o644, nil); err != nil {
			return fmt.Errorf("timezone %q: %w", tz, err)
		}
	}
	env.Logger().Info("time zone set", zap.String("timezone", tz))
	return nil
}

// check accepts a zone whose file exists under the root's zoneinfo; a name
// that climbs out of it ("../../etc/passwd") is no zone.
func check(root *sys.Root, tz string) error {
	if tz == "" || !filepath.IsLocal(tz) || strings.ContainsAny(tz, "\\\n") {
		return fmt.Errorf("%q is not a time zone name", tz)
	}
	fi, err := root.Stat(ZoneinfoDir + "/" + tz)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unknown time zone %q: no %s/%s (is tzdata installed?)", tz, ZoneinfoDir, tz)
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%q is not a time zone: %s/%s is not a file", tz, ZoneinfoDir, tz)
	}
	return nil
}

// link points /etc/localtime at the zone with a relative link, as
// timedatectl does, so it resolves the same under a root prefix and on the
// booted image. The new link is renamed over the old one: readers never
// see /etc/localtime missing.
func link(root *sys.Root, tz string) error {
	// Path would follow an existing /etc/localtime link to the old zone:
	// resolve the directory and name the link inside it.
	dir, err := root.Path(filepath.Dir(LocaltimeFile))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	target := "../" + strings.TrimPrefix(ZoneinfoDir, "/") + "/" + tz
	tmp := filepath.Join(dir, ".localtime.ec2init")
	_ = os.Remove(tmp) // a leftover of a crash
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", LocaltimeFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, filepath.Base(LocaltimeFile))); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link %s: %w", LocaltimeFile, err)
	}
	return nil
}
