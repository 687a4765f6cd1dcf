package software

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/redact"
	"github.com/ec2init/ec2init/modules"
)

// PlanItem is one line of `ec2init bake --dry-run`.
type PlanItem struct {
	Name     string
	Policy   string
	Type     string
	Source   string // redacted
	Checksum string // "sha256:<hex>", "sha256 from <url>", or ""
	Dest     string
	// Action: what bake does with it ("fetch, verify, install") or why
	// not ("at boot").
	Action string
	Err    error
}

// Plan returns what Bake would do with cfg's software items, changing
// nothing. The error is for a software key that cannot be used at all.
func Plan(cfg *config.CloudConfig) ([]PlanItem, error) {
	c, ok, err := Parse(cfg)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	var out []PlanItem
	for _, it := range c.Items {
		src := it.VersionFrom
		if urls := it.urls(); len(urls) > 0 {
			src = urls[0]
		}
		p := PlanItem{Name: it.Name, Policy: it.Policy, Type: it.Install.Type, Source: redact.URL(src), Dest: it.Install.Dest, Err: it.Err}
		switch algo, sum := it.checksumOf(); {
		case sum != "":
			p.Checksum = algo + ":" + sum
		case it.SHA256URL != "":
			p.Checksum = "sha256 from " + redact.URL(it.SHA256URL)
		case it.SHA512URL != "":
			p.Checksum = "sha512 from " + redact.URL(it.SHA512URL)
		case it.hasSignature():
			p.Checksum = it.sigKind() + " signature"
		case it.VersionFrom != "":
			p.Checksum = "from version_from"
		}
		switch {
		case it.Err != nil:
			p.Action = "invalid"
		case it.Policy != PolicyBake:
			p.Action = "at boot (policy boot)"
		case it.NeedsFetch() && !it.verified():
			p.Action = "install (a local file, no checksum)"
		case it.VersionFrom != "":
			p.Action = "resolve the version, fetch, verify, install"
		case it.NeedsFetch():
			p.Action = "fetch, verify, install"
		default:
			p.Action = "install"
		}
		if it.Service != nil && it.Policy == PolicyBake {
			p.Action += ", enable " + it.Service.Unit
		}
		out = append(out, p)
	}
	return out, nil
}

// ErrNothingToBake is returned by Bake when the cloud-config has no
// software key.
var ErrNothingToBake = errors.New("the cloud-config has no software key: nothing to bake")

// Bake fetches, verifies and installs every policy: bake item of cfg, in
// list order (fetches in parallel), enabling their units without starting
// them. It returns every bake item's result and the manifest describing
// what was installed, for the caller to write once the image is cleaned.
// The error names each failed item (or an invalid configuration); the
// manifest is then nil: a half-baked image must not be recorded as baked.
func (m Software) Bake(ctx context.Context, env *modules.Env, cfg *config.CloudConfig, version string) (*Manifest, []ItemResult, error) {
	c, ok, err := Parse(cfg)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, ErrNothingToBake
	}
	var items []*Item
	var failures []error
	for _, it := range c.Items {
		if it.Err != nil {
			failures = append(failures, it.Err)
			continue
		}
		if it.Policy == PolicyBake {
			items = append(items, it)
		}
	}
	if len(failures) > 0 {
		return nil, nil, modules.JoinItemErrors(failures)
	}
	results := m.apply(ctx, env, c, items, true)
	man := &Manifest{Version: ManifestVersion, BakedAt: m.now(), EC2InitVersion: version}
	for i, r := range results {
		if r.err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", r.Name, r.err))
			continue
		}
		mi := ManifestItem{Name: r.Name, Type: r.Type, Source: r.Source, Algo: r.algo, Sum: r.sum,
			Size: r.Bytes, Installed: r.inst.paths, Package: r.inst.pkg, ResolvedURL: r.ResolvedURL, Signer: r.Signer}
		if items[i].VersionFrom != "" {
			mi.Version = r.Version
		}
		man.Items = append(man.Items, mi)
		env.Logger().Info("software: baked", zap.String("item", items[i].Name), zap.String("checksum", r.Checksum),
			zap.Int64("bytes", r.Bytes), zap.Bool("cached", r.Cached))
	}
	if len(failures) > 0 {
		return nil, results, modules.JoinItemErrors(failures)
	}
	if ctx.Err() != nil {
		return nil, results, ctx.Err()
	}
	return man, results, nil
}

// String is a plan item as one line, for logs.
func (p PlanItem) String() string {
	parts := []string{p.Name, p.Policy, p.Type}
	if p.Source != "" {
		parts = append(parts, p.Source)
	}
	return strings.Join(append(parts, p.Action), " ")
}
