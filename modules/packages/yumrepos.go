package packages

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/distro"
)

// DefaultYumRepoDir is where yum_repos are written unless yum_repo_dir says
// otherwise.
const DefaultYumRepoDir = "/etc/yum.repos.d"

// repoIDRE is what a repository id may be once spaces are underscores: it
// names the file, so no "/" and no leading dot.
var repoIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]*$`) })

// repoKeyRE is what a .repo option name may be (after cloud-init's
// lower-casing and "-" to "_").
var repoKeyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9_]+$`) })

// YumAddRepo writes yum_repos to /etc/yum.repos.d once per instance.
type YumAddRepo struct{}

// yumRepoType is one repository: the usual options typed, any other yum
// option accepted as it is (yum.conf(5) has dozens).
var yumRepoType = sync.OnceValue(func() *config.Type {
	return &config.Type{Kind: config.KindObject, Extra: true, Fields: []config.Field{
		{Name: "baseurl", Type: config.OneOf(config.String(), config.ListOf(config.String())), Doc: "URL(s) of the repository; this, metalink or mirrorlist is required."},
		{Name: "metalink", Type: config.String(), Doc: "URL of a metalink file listing mirrors."},
		{Name: "mirrorlist", Type: config.String(), Doc: "URL of a file listing mirrors."},
		{Name: "name", Type: config.String(), Doc: "Human-readable name."},
		{Name: "enabled", Type: config.OneOf(config.Bool(), config.Int()), Doc: "Whether the repository is used (written 1 or 0)."},
		{Name: "gpgcheck", Type: config.OneOf(config.Bool(), config.Int()), Doc: "Whether package signatures are checked (written 1 or 0)."},
		{Name: "gpgkey", Type: config.OneOf(config.String(), config.ListOf(config.String())), Doc: "URL(s) of the signing key(s)."},
	}}
})

func (YumAddRepo) Name() string                 { return "yum_add_repo" }
func (YumAddRepo) Stage() modules.Stage         { return modules.StageConfig }
func (YumAddRepo) Frequency() modules.Frequency { return state.PerInstance }
func (YumAddRepo) Schema() modules.Schema {
	return modules.Schema{
		Doc: "Add yum/dnf repositories (one .repo file per repository id).",
		Keys: []config.Field{
			{Name: "yum_repos", Type: config.MapOf(yumRepoType()),
				Doc: "Repositories by id: their yum options (baseurl, name, enabled, gpgcheck, gpgkey, any other). An existing <id>.repo is left alone."},
			{Name: "yum_repo_dir", Type: config.String(), Default: DefaultYumRepoDir,
				Doc: "The directory the .repo files are written to."},
		},
	}
}

func (m YumAddRepo) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	log := env.Logger()
	v, ok := cfg.Get("yum_repos")
	if !ok || v.Node.Tag == "!!null" {
		return nil
	}
	if v.Node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: yum_repos: expected a mapping of repository ids", v.Source, v.KeyLine)
	}
	dir, err := yumRepoDir(cfg)
	if err != nil {
		return err
	}
	d, err := distro.Detect(env.Root)
	if err != nil {
		return fmt.Errorf("yum_repos: %w", err)
	}
	if d.IsDebianLike() {
		// As cloud-init, which runs this module on Red Hat-likes only; a
		// config shared by a mixed fleet must not fail here.
		log.Warn("yum_repos: the image is Debian-like; yum repositories not written", zap.String("distro", d.String()))
		fmt.Fprintf(env.ConsoleWriter(), "ec2init: yum_repos ignored: the image is %s, which has no yum\n", d)
		return nil
	}
	var errs []error
	for i := 0; i+1 < len(v.Node.Content); i += 2 {
		k, repo := v.Node.Content[i], v.Node.Content[i+1]
		if err := writeRepo(env, log, dir, k.Value, repo); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: yum_repos.%s: %w", v.Source, k.Line, k.Value, err))
		}
	}
	return errors.Join(errs...)
}

func yumRepoDir(cfg *config.CloudConfig) (string, error) {
	v, ok := cfg.Get("yum_repo_dir")
	if !ok || v.Node.Tag == "!!null" {
		return DefaultYumRepoDir, nil
	}
	if v.Node.Kind != yaml.ScalarNode || !strings.HasPrefix(v.Node.Value, "/") {
		return "", fmt.Errorf("%s:%d: yum_repo_dir: expected an absolute directory path", v.Source, v.KeyLine)
	}
	return path.Clean(v.Node.Value), nil
}

// writeRepo writes one repository's file, unless it exists (cloud-init
// leaves a repository it finds in place: the image's own wins).
func writeRepo(env *modules.Env, log *zap.Logger, dir, rawID string, repo *yaml.Node) error {
	id := strings.ReplaceAll(strings.TrimSpace(rawID), " ", "_")
	if !repoIDRE().MatchString(id) {
		return fmt.Errorf("%q is not a repository id (letters, digits, _ . : -)", rawID)
	}
	content, err := repoFile(id, repo)
	if err != nil {
		return err
	}
	file := path.Join(dir, id+".repo")
	exists, err := env.Root.Exists(file)
	if err != nil {
		return err
	}
	if exists {
		log.Info("yum_repos: repository file exists; left alone", zap.String("file", file))
		return nil
	}
	if err := env.Root.WriteFile(file, content, 0o644, nil); err != nil {
		return err
	}
	log.Info("yum_repos: repository added", zap.String("file", file))
	return nil
}

// repoFile renders one repository as yum's INI: options in the order
// given, booleans as 1/0, lists as continuation lines.
func repoFile(id string, repo *yaml.Node) ([]byte, error) {
	if repo.Kind != yaml.MappingNode {
		return nil, errors.New("expected a mapping of yum options")
	}
	var b strings.Builder
	b.WriteString("# Written by ec2init from cloud-config yum_repos\n")
	fmt.Fprintf(&b, "[%s]\n", id)
	seen := map[string]bool{}
	for i := 0; i+1 < len(repo.Content); i += 2 {
		rawKey, val := repo.Content[i], repo.Content[i+1]
		// cloud-init's normalisation, so "Base-URL" is baseurl.
		key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(rawKey.Value)), "-", "_")
		if !repoKeyRE().MatchString(key) {
			return nil, fmt.Errorf("%q is not a yum option name", rawKey.Value)
		}
		if val.Tag == "!!null" {
			continue // unset, as cloud-init reads null
		}
		s, err := repoValue(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		seen[key] = true
		fmt.Fprintf(&b, "%s=%s\n", key, s)
	}
	if !seen["baseurl"] && !seen["metalink"] && !seen["mirrorlist"] {
		return nil, errors.New("needs baseurl, metalink or mirrorlist")
	}
	return []byte(b.String()), nil
}

// repoValue formats one option value.
func repoValue(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!bool" || (n.Style == 0 && isBoolWord(n.Value)) {
			if b, _ := config.ParseBool(n.Value); b {
				return "1", nil
			}
			return "0", nil
		}
		if strings.ContainsAny(n.Value, "\r\n") {
			// A newline would start a new option or section.
			return "", errors.New("value spans lines; give a list for several values")
		}
		return n.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return "", errors.New("list items must be plain values")
			}
			s, err := repoValue(item)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		// yum's continuation lines: one value per indented line.
		return strings.Join(parts, "\n    "), nil
	}
	return "", errors.New("expected a value or a list of values")
}

// isBoolWord: the YAML 1.1 words cloud-init's PyYAML reads as booleans
// when unquoted (true and false are tagged !!bool already).
func isBoolWord(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "no", "on", "off", "y", "n":
		return true
	}
	return false
}
