package writefiles

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/modules"
)

// parseSource reads source: {uri, headers}.
func (it *item) parseSource(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("expected a mapping with a uri")
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j].Value, n.Content[j+1]
		switch k {
		case "uri":
			if v.Kind != yaml.ScalarNode || v.Value == "" || v.Tag == "!!null" {
				return errors.New("uri: expected a URL")
			}
			it.sourceURI = v.Value
		case "headers":
			// Read and checked by the schema; the one fetcher sends none.
		default:
			return fmt.Errorf("unknown key %q", k)
		}
	}
	if it.sourceURI == "" {
		return errors.New("uri is required")
	}
	return nil
}

// fetchSource replaces the content with the source's body, as cloud-init
// does (the body is written as is, encoding applies to content only).
// When the fetch fails the decoded content is written instead, with a
// warning; with no content to fall back to the item fails and nothing is
// written (cloud-init skips it with a warning; a failure is visible).
func (it *item) fetchSource(ctx context.Context, env *modules.Env) error {
	if it.sourceURI == "" {
		return nil
	}
	if env.Fetcher == nil {
		return fmt.Errorf("write_files[%d] %s: source: no fetcher", it.index, it.path)
	}
	// The fetcher's errors are redacted: no credentials from the URL.
	body, err := env.Fetcher.Get(ctx, it.sourceURI)
	if err == nil {
		it.content = body
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !it.hasContent {
		return fmt.Errorf("write_files[%d] %s: source: %w (and no content to fall back to)", it.index, it.path, err)
	}
	env.Logger().Warn("write_files: source could not be fetched; writing content instead",
		zap.Int("item", it.index), zap.String("path", it.path), zap.Error(err))
	return nil
}
