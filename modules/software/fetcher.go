package software

import (
	"context"

	"github.com/ec2init/ec2init/agent/fetch"
)

// Fetcher brings artifacts into the content-addressed cache, verified
// against their checksums, several at a time: the part of
// fetch.ArtifactFetcher the module uses. srcs[i] is named names[i]; the
// results are in the same order, one of the artifact and the error set.
// ResolveVersion reads an item's version_from.
type Fetcher interface {
	FetchAll(ctx context.Context, parallel int, names []string, srcs []fetch.Source) ([]fetch.Artifact, []error)
	ResolveVersion(ctx context.Context, name, from string, allowInsecure bool) (fetch.Resolved, error)
}

// defaultFetcher builds the agent's artifact fetcher.
func defaultFetcher(opts fetch.ArtifactOptions) (Fetcher, error) {
	f, err := fetch.NewArtifactFetcher(opts)
	if err != nil {
		return nil, err
	}
	return f, nil
}
