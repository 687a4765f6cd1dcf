// Package locale implements cloud-init's locale module: the system locale
// (LANG) in /etc/default/locale on Debian-likes or /etc/locale.conf
// elsewhere, and on Debian-likes the locale enabled in /etc/locale.gen and
// generated when the running system lacks it.
package locale

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// Files (host paths under the root).
const (
	DebianConfigFile = "/etc/default/locale"
	ConfigFile       = "/etc/locale.conf"
	LocaleGenFile    = "/etc/locale.gen"
	SupportedFile    = "/usr/share/i18n/SUPPORTED"
)

// genTimeout bounds locale-gen, which compiles locales (seconds each).
const genTimeout = 10 * time.Minute

// nameRE is what a locale name may hold: en_US.UTF-8, de_DE@euro, C.UTF-8.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.@+-]+$`) })

// Locale sets the system locale once per instance.
type Locale struct{}

func (Locale) Name() string                 { return "locale" }
func (Locale) Stage() modules.Stage         { return modules.StageConfig }
func (Locale) Frequency() modules.Frequency { return state.PerInstance }
func (Locale) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Set the system locale (LANG).",
		Keys: []config.Field{
			{Name: "locale", Type: config.OneOf(config.String(), config.Bool()),
				Doc: "The locale, e.g. en_US.UTF-8; false leaves the locale alone."},
			{Name: "locale_configfile", Type: config.String(), Default: "/etc/default/locale on Debian-likes, else /etc/locale.conf",
				Doc: "The file LANG is written to."},
		},
	}
}

func (Locale) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	name, err := localeName(cfg)
	if err != nil || name == "" {
		if err == nil {
			log.Info("locale: no locale name given; the locale is left alone")
		}
		return err
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return err
	}
	file := ConfigFile
	if d.IsDebianLike() {
		file = DebianConfigFile
	}
	if v, ok := cfg.Get("locale_configfile"); ok && v.Node.Kind == yaml.ScalarNode && v.Node.Tag != "!!null" {
		file = v.Node.Value
		if !strings.HasPrefix(file, "/") {
			return fmt.Errorf("%s:%d: locale_configfile: %q is not an absolute path", v.Source, v.KeyLine, file)
		}
	}
	// Red Hat-likes ship compiled locales in glibc-langpack-* packages:
	// nothing to generate there, the packages module installs them.
	generate := d.IsDebianLike() && !builtin(name)
	if generate {
		// First, so a locale glibc cannot make is not set as LANG.
		if err := enableInLocaleGen(env.Root, name); err != nil {
			return fmt.Errorf("locale %s: %w", name, err)
		}
	}
	old, err := env.Root.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if out := setLang(old, name); !bytes.Equal(out, old) || errors.Is(err, fs.ErrNotExist) {
		if err := env.Root.WriteFile(file, out, 0o644, nil); err != nil {
			return err
		}
	}
	log.Info("locale set", zap.String("locale", name), zap.String("file", file))
	if !generate {
		return nil
	}
	// Generating compiles into the running system's /usr/lib/locale: only
	// when the root is that system, and only if the locale is missing.
	if !env.Root.IsHost() {
		return nil
	}
	if have, err := available(ctx, env.Runner, name); err == nil && have {
		return nil
	}
	argv := []string{"locale-gen", "--keep-existing"}
	if d.Is("ubuntu") {
		argv = []string{"locale-gen", name} // Ubuntu's locale-gen takes names
	}
	var out bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "locale-gen", Argv: argv, Output: &out, Timeout: genTimeout})
	if err != nil {
		return fmt.Errorf("locale %s: %w", name, err)
	}
	if res.ExitCode != 0 {
		msg, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
		return fmt.Errorf("locale %s: locale-gen: exit status %d: %s", name, res.ExitCode, msg)
	}
	return nil
}

// localeName reads the locale key: "" for false or null.
func localeName(cfg *config.CloudConfig) (string, error) {
	v, ok := cfg.Get("locale")
	if !ok || v.Node.Tag == "!!null" {
		return "", nil
	}
	if v.Node.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s:%d: locale: expected a locale name", v.Source, v.KeyLine)
	}
	if v.Node.Tag == "!!bool" || (v.Node.Style == 0 && isBoolWord(v.Node.Value)) {
		return "", nil
	}
	name := strings.TrimSpace(v.Node.Value)
	if !nameRE().MatchString(name) {
		return "", fmt.Errorf("%s:%d: locale: %q is not a locale name (like en_US.UTF-8)", v.Source, v.KeyLine, name)
	}
	return name, nil
}

// isBoolWord: cloud-init's YAML 1.1 reads an unquoted yes, off, ... as a
// boolean, never a locale name.
func isBoolWord(s string) bool {
	_, err := config.ParseBool(s)
	return err == nil
}

// builtin locales need no generating.
func builtin(name string) bool {
	switch normalize(name) {
	case "c", "posix", "c.utf8":
		return true
	}
	return false
}

// normalize spells a locale name as locale -a lists it: the codeset lower
// case without dashes ("en_US.UTF-8" is "en_US.utf8").
func normalize(name string) string {
	base, mod, _ := strings.Cut(name, "@")
	lang, codeset, hasCodeset := strings.Cut(base, ".")
	out := lang
	if strings.EqualFold(lang, "c") || strings.EqualFold(lang, "posix") {
		out = strings.ToLower(lang)
	}
	if hasCodeset {
		out += "." + strings.ToLower(strings.ReplaceAll(codeset, "-", ""))
	}
	if mod != "" {
		out += "@" + mod
	}
	return out
}

// setLang sets LANG in a KEY=value file, replacing a LANG line (even
// commented out, as update-locale leaves "# LANG=...") or adding one, and
// keeping every other line (LANGUAGE, LC_*).
func setLang(old []byte, name string) []byte {
	line := "LANG=" + name
	lines := strings.Split(strings.TrimSuffix(string(old), "\n"), "\n")
	if len(old) == 0 {
		lines = nil
	}
	done := false
	for i, l := range lines {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "export "))
		if strings.HasPrefix(t, "LANG=") {
			if done {
				lines[i] = "# " + l // a second LANG would override ours
				continue
			}
			lines[i], done = line, true
		}
	}
	if !done {
		lines = append(lines, line)
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// enableInLocaleGen makes sure /etc/locale.gen, which Debian's locale-gen
// compiles, has name uncommented. Without the file (the locales package
// is not installed) nothing is done.
func enableInLocaleGen(root *sys.Root, name string) error {
	b, err := root.ReadFile(LocaleGenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for i, l := range lines {
		f := strings.Fields(strings.TrimLeft(strings.TrimSpace(l), "# "))
		if len(f) != 2 || normalize(f[0]) != normalize(name) {
			continue
		}
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			return nil
		}
		lines[i] = f[0] + " " + f[1]
		return root.WriteFile(LocaleGenFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644, nil)
	}
	entry, err := supportedEntry(root, name)
	if err != nil {
		return err
	}
	lines = append(lines, entry)
	return root.WriteFile(LocaleGenFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644, nil)
}

// supportedEntry finds name's line ("de_DE@euro ISO-8859-15") in glibc's
// list of supported locales; a name not in it cannot be generated.
func supportedEntry(root *sys.Root, name string) (string, error) {
	b, err := root.ReadFile(SupportedFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && normalize(f[0]) == normalize(name) {
			return f[0] + " " + f[1], nil
		}
	}
	if err != nil { // no list: trust the codeset the name carries
		if _, codeset, ok := strings.Cut(strings.SplitN(name, "@", 2)[0], "."); ok {
			return name + " " + codeset, nil
		}
	}
	return "", fmt.Errorf("not a supported locale (not in %s)", SupportedFile)
}

// available reports whether the running system has the locale compiled.
func available(ctx context.Context, r *sys.Runner, name string) (bool, error) {
	var out bytes.Buffer
	res, err := r.Run(ctx, sys.Cmd{Name: "locale -a", Argv: []string{"locale", "-a"}, Output: &out, Timeout: time.Minute})
	if err != nil {
		return false, err
	}
	if res.ExitCode != 0 {
		return false, fmt.Errorf("locale -a: exit status %d", res.ExitCode)
	}
	want := normalize(name)
	for _, l := range strings.Split(out.String(), "\n") {
		if normalize(strings.TrimSpace(l)) == want {
			return true, nil
		}
	}
	return false, nil
}
