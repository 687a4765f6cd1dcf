// Package phonehome implements cloud-init's phone_home module: once per
// instance, the instance's facts (host keys, instance id, names) are
// POSTed, form-encoded, to a URL through the agent's one fetcher.
package phonehome

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/fetch"
	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/modules"
)

// Keys are the facts `post: all` sends, in cloud-init's order.
var Keys = []string{"pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519", "instance_id", "hostname", "fqdn"}

var pubKeyFiles = map[string]string{
	"pub_key_rsa":     "/etc/ssh/ssh_host_rsa_key.pub",
	"pub_key_ecdsa":   "/etc/ssh/ssh_host_ecdsa_key.pub",
	"pub_key_ed25519": "/etc/ssh/ssh_host_ed25519_key.pub",
}

// defaultTries is cloud-init's.
const defaultTries = 10

// notAvailable is what cloud-init posts for a fact it could not read.
const notAvailable = "N/A"

// PhoneHome posts once per instance.
type PhoneHome struct{}

func (PhoneHome) Name() string                 { return "phone_home" }
func (PhoneHome) Stage() modules.Stage         { return modules.StageFinal }
func (PhoneHome) Frequency() modules.Frequency { return state.PerInstance }
func (PhoneHome) Schema() modules.Schema {
	return modules.Schema{
		Doc: "POST the instance's host keys, id and names to a URL when the boot is done.",
		Keys: []config.Field{{Name: "phone_home", Type: config.Object(
			config.Field{Name: "url", Type: config.String(), Required: true,
				Doc: "Where to POST (https; http only where the agent's fetcher allows it); $INSTANCE_ID or ${INSTANCE_ID} is the instance id."},
			config.Field{Name: "post", Type: config.OneOf(config.Enum("all"), config.ListOf(config.Enum(Keys...))), Default: "all",
				Doc: "all, or a list of: " + strings.Join(Keys, ", ") + "."},
			config.Field{Name: "tries", Type: config.OneOf(config.Int(), config.String()), Default: "10",
				Doc: "Attempts before giving up (not an integer: 10, as cloud-init)."},
		)}},
	}
}

type settings struct {
	URL   string    `yaml:"url"`
	Post  yaml.Node `yaml:"post"`
	Tries yaml.Node `yaml:"tries"`
}

func (PhoneHome) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	var s settings
	if ok, err := cfg.Decode("phone_home", &s); err != nil || !ok {
		return err
	}
	log := env.Logger()
	if s.URL == "" {
		log.Warn("phone_home: no url; nothing posted")
		return nil
	}
	if env.Instance == nil || env.Instance.InstanceID == "" {
		return errors.New("no instance id to post")
	}
	post, err := postList(&s.Post)
	if err != nil {
		return err
	}
	tries := defaultTries
	if s.Tries.Kind == yaml.ScalarNode {
		var n int
		if err := s.Tries.Decode(&n); err == nil && n > 0 {
			tries = n
		} else {
			log.Warn("phone_home: tries is not a positive integer; using 10", zap.String("tries", s.Tries.Value))
		}
	}
	u, err := expand(s.URL, env.Instance.InstanceID)
	if err != nil {
		return err
	}
	facts := factsOf(env)
	form := url.Values{}
	for _, k := range post {
		v, ok := facts[k]
		if !ok {
			log.Warn("phone_home: fact not available; posting "+notAvailable, zap.String("key", k))
			v = notAvailable
		}
		form.Set(k, v)
	}
	f := env.Fetcher
	if f == nil {
		f = fetch.New(fetch.Options{})
	}
	if _, err := f.PostForm(ctx, u, form, tries); err != nil {
		return fmt.Errorf("post to %s: %w", redact.URL(u), err)
	}
	log.Info("phoned home", zap.String("url", redact.URL(u)), zap.Strings("keys", post))
	return nil
}

func postList(n *yaml.Node) ([]string, error) {
	switch {
	case n.Kind == 0 || n.Tag == "!!null", n.Kind == yaml.ScalarNode && n.Value == "all":
		return Keys, nil
	case n.Kind == yaml.SequenceNode:
		var keys []string
		if err := n.Decode(&keys); err != nil {
			return nil, fmt.Errorf("phone_home.post: line %d: %w", n.Line, err)
		}
		return keys, nil
	}
	return nil, fmt.Errorf("phone_home.post: line %d: want all or a list of keys", n.Line)
}

// variable is cloud-init's basic template: $NAME or ${NAME}.
var variable = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}|\$([A-Za-z0-9_.]+)`) })

// expand substitutes the instance id, the one variable cloud-init gives
// the URL; another variable fails, as it does in cloud-init.
func expand(raw, instanceID string) (string, error) {
	var bad string
	out := variable().ReplaceAllStringFunc(raw, func(m string) string {
		name := strings.Trim(m, "${}")
		if name != "INSTANCE_ID" {
			bad = name
			return m
		}
		return instanceID
	})
	if bad != "" {
		return "", fmt.Errorf("phone_home.url: unknown variable $%s (only $INSTANCE_ID is set)", bad)
	}
	return out, nil
}

// factsOf are the facts the instance has: host public keys that exist,
// the id and IMDS's local-hostname (as cloud-init's EC2 source names it).
func factsOf(env *modules.Env) map[string]string {
	facts := map[string]string{"instance_id": env.Instance.InstanceID}
	for k, p := range pubKeyFiles {
		if b, err := env.Root.ReadFile(p); err == nil {
			facts[k] = string(b)
		} else {
			env.Logger().Warn("phone_home: host key unreadable; posting "+notAvailable, zap.String("file", p), zap.Error(err))
		}
	}
	name := strings.Fields(env.Instance.LocalHostname)
	if len(name) == 0 {
		name = strings.Fields(env.Instance.Hostname)
	}
	if len(name) > 0 {
		fqdn := name[0]
		if ip := net.ParseIP(fqdn); ip != nil && ip.To4() != nil {
			fqdn = "ip-" + strings.ReplaceAll(fqdn, ".", "-")
		}
		short, _, _ := strings.Cut(fqdn, ".")
		facts["hostname"], facts["fqdn"] = short, fqdn
	}
	return facts
}
