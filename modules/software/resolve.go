package software

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
)

// Resolve resolves the version_from of cfg's policy: boot items and
// fetches and verifies what each resolved, installing nothing: the results
// Pin needs (version, URL, digest) for `ec2init bake --pin` to freeze the
// boot items to what this instance resolved. The artifacts go to a scratch
// cache beside cache_dir, removed before returning: a boot item is fetched
// by each instance, not shipped in the image's cache. The error names each
// item that could not be resolved or verified.
func (m Software) Resolve(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) ([]ItemResult, error) {
	c, ok, err := Parse(cfg)
	if err != nil || !ok {
		return nil, err
	}
	var items []*Item
	for _, it := range c.Items {
		if it.Err == nil && it.Policy == PolicyBoot && it.VersionFrom != "" {
			items = append(items, it)
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	parent := path.Dir(c.CacheDir)
	if err := env.Root.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("scratch cache: %w", err)
	}
	host, err := env.Root.Path(parent)
	if err != nil {
		return nil, fmt.Errorf("scratch cache: %w", err)
	}
	dir, err := os.MkdirTemp(host, ".software-pin-")
	if err != nil {
		return nil, fmt.Errorf("scratch cache: %w", err)
	}
	defer os.RemoveAll(dir)
	scratch := *c
	scratch.CacheDir = path.Join(parent, filepath.Base(dir))
	now := m.now()
	results := make([]ItemResult, len(items))
	for i, it := range items {
		results[i] = newResult(it, now)
	}
	m.fetchAll(ctx, env, &scratch, items, results)
	var failures []error
	for i := range results {
		if results[i].err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", results[i].Name, results[i].err))
			continue
		}
		results[i].Action = ActionPlanned
	}
	if ctx.Err() != nil {
		return results, ctx.Err()
	}
	return results, modules.JoinItemErrors(failures)
}
