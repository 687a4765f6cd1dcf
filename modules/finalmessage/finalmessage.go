// Package finalmessage implements cloud-init's final_message: at the end of
// every boot's final stage, a line on the console saying the boot is done,
// the default one or the user's, with variables substituted.
package finalmessage

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
)

// Key is the cloud-config key read.
const Key = "final_message"

// DefaultMessage is cloud-init's default in ec2init's words.
const DefaultMessage = "ec2init v. $VERSION finished at $TIMESTAMP. Datasource $DATASOURCE. Up $UPTIME seconds"

// Datasource is what $DATASOURCE says: ec2init has only the one.
const Datasource = "Ec2"

// timestampLayout is RFC 2822 in UTC, as cloud-init's $TIMESTAMP.
const timestampLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// FinalMessage prints the final message at every boot. The zero value is
// ready to use; the fields are for the agent's wiring and for tests.
type FinalMessage struct {
	// Version is $VERSION; "" means the binary's module version.
	Version string
	// Now is the clock for $TIMESTAMP; nil means time.Now.
	Now func() time.Time
	// Uptime is $UPTIME in seconds; nil reads /proc/uptime. That is the
	// running kernel's, not the root's: under --root it is still the
	// machine the agent runs on that has been up.
	Uptime func() (float64, error)
}

func (FinalMessage) Name() string                 { return "final_message" }
func (FinalMessage) Stage() modules.Stage         { return modules.StageFinal }
func (FinalMessage) Frequency() modules.Frequency { return state.Always }
func (FinalMessage) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Print a message on the console when the boot is done.",
		Keys: []config.Field{{Name: Key, Type: config.String(), Default: DefaultMessage,
			Doc: "The message; $VERSION, $TIMESTAMP, $DATASOURCE, $UPTIME and $INSTANCE_ID (also ${NAME}, lower case, or {{ name }} after a '## template: jinja' line) are substituted."}},
	}
}

// Wanted: the default message is printed when the key is absent.
func (FinalMessage) Wanted(*config.CloudConfig) bool { return true }

func (f FinalMessage) Run(_ context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var msg string
	if _, err := cfg.Decode(Key, &msg); err != nil {
		return err
	}
	// As cloud-init: surrounding blanks go, and an empty message is the default.
	if msg = strings.TrimSpace(msg); msg == "" {
		msg = DefaultMessage
	}
	vars := f.vars(env)
	out := Render(msg, vars)
	if _, err := io.WriteString(env.ConsoleWriter(), out+"\n"); err != nil {
		return fmt.Errorf("writing to the console: %w", err)
	}
	env.Logger().Info("final message", zap.String("message", out))
	return nil
}

func (f FinalMessage) vars(env *modules.Env) map[string]string {
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	uptime := f.Uptime
	if uptime == nil {
		uptime = procUptime
	}
	up := "unknown"
	if secs, err := uptime(); err == nil {
		up = fmt.Sprintf("%.2f", secs)
	} else {
		env.Logger().Warn("final_message: uptime unknown", zap.Error(err))
	}
	id := ""
	if env.Instance != nil {
		id = env.Instance.InstanceID
	}
	return map[string]string{
		"version":     f.version(env),
		"timestamp":   now().UTC().Format(timestampLayout),
		"datasource":  Datasource,
		"uptime":      up,
		"instance_id": id,
	}
}

func (f FinalMessage) version(env *modules.Env) string {
	if f.Version != "" {
		return f.Version
	}
	if env.Version != "" {
		return env.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

func procUptime() (float64, error) {
	fh, err := os.Open("/proc/uptime")
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	var up float64
	if _, err := fmt.Fscan(bufio.NewReader(fh), &up); err != nil {
		return 0, fmt.Errorf("/proc/uptime: %w", err)
	}
	return up, nil
}

// The substitutions cloud-init's basic renderer makes ($name, ${name}),
// and the plain {{ name }} of its jinja renderer.
var (
	dollarVar = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$(?:\{(\w+)\}|(\w+))`) })
	jinjaVar  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{\{-?\s*(\w+)\s*-?\}\}`) })
)

// jinjaHeader marks a cloud-init jinja template.
const jinjaHeader = "## template: jinja"

// Render substitutes vars (keys lower case) in msg, names matched in
// either case as cloud-init does. A name it does not know is left as
// written (cloud-init fails the whole message instead), so a "$5" or
// "$HOME" in the text survives. A first line "## template: jinja" is
// dropped and {{ name }} substituted; other jinja syntax is left as it is.
func Render(msg string, vars map[string]string) string {
	lookup := func(name string) (string, bool) {
		for _, k := range []string{name, strings.ToLower(name)} {
			if v, ok := vars[k]; ok && (k == name || name == strings.ToUpper(name)) {
				return v, true
			}
		}
		return "", false
	}
	if first, rest, _ := strings.Cut(msg, "\n"); strings.TrimSpace(first) == jinjaHeader {
		return jinjaVar().ReplaceAllStringFunc(rest, func(m string) string {
			if v, ok := lookup(jinjaVar().FindStringSubmatch(m)[1]); ok {
				return v
			}
			return m
		})
	}
	return dollarVar().ReplaceAllStringFunc(msg, func(m string) string {
		sub := dollarVar().FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := lookup(name); ok {
			return v
		}
		return m
	})
}
