package imds

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
)

// Tree is a crawled snapshot of the metadata tree: every leaf value and
// every directory listing, keyed by path relative to latest/ (for example
// "meta-data/ami-id" or "meta-data/public-keys/").
type Tree struct {
	values   map[string]string
	listings map[string][]string
	redacted map[string]bool
}

// Entry is one leaf of a Tree.
type Entry struct {
	Path     string `json:"path"`
	Value    string `json:"value"`
	Redacted bool   `json:"redacted,omitempty"`
}

// Value returns the leaf at path.
func (t *Tree) Value(path string) (string, bool) {
	v, ok := t.values[path]
	return v, ok
}

// Listing returns the raw listing of directory dir (with its trailing slash).
func (t *Tree) Listing(dir string) []string { return t.listings[dir] }

// Entries returns every leaf, sorted by path so output is deterministic.
func (t *Tree) Entries() []Entry {
	out := make([]Entry, 0, len(t.values)+len(t.redacted))
	for p, v := range t.values {
		out = append(out, Entry{Path: p, Value: v})
	}
	for p := range t.redacted {
		out = append(out, Entry{Path: p, Redacted: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// secretDirs hold credentials: a crawl lists them but never fetches the
// values, so a tree dump or a log cannot carry a secret by accident.
var secretDirs = []string{
	"meta-data/iam/security-credentials/",
	"meta-data/identity-credentials/ec2/security-credentials/",
}

func isSecret(path string) bool {
	for _, d := range secretDirs {
		if strings.HasPrefix(path, d) && len(path) > len(d) {
			return true
		}
	}
	return false
}

// childPath maps one listing line to the path of the child. IMDS lists
// subdirectories with a trailing slash, except public keys, listed as
// "0=name" and addressed as "0/".
func childPath(dir, item string) string {
	if strings.HasSuffix(dir, "public-keys/") {
		if i := strings.IndexByte(item, '='); i > 0 {
			return dir + item[:i] + "/"
		}
	}
	return dir + item
}

// Crawl fetches every path below the given roots ("meta-data/",
// "dynamic/"; both when none are given) with at most Config.Concurrency
// requests in flight, so the tree arrives in about as many round trips as it
// is deep. A path that disappears between listing and fetch is skipped; any
// other error stops the crawl.
func (c *Client) Crawl(ctx context.Context, roots ...string) (*Tree, error) {
	return c.crawl(ctx, nil, roots...)
}

// crawl is Crawl that takes the leaves in known (paths relative to
// latest/, such as "meta-data/instance-id") as already fetched, when a
// listing names them.
func (c *Client) crawl(ctx context.Context, known map[string]string, roots ...string) (*Tree, error) {
	if len(roots) == 0 {
		roots = []string{"meta-data/", "dynamic/"}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cr := &crawler{
		client: c,
		sem:    make(chan struct{}, c.cfg.Concurrency),
		tree: &Tree{
			values:   map[string]string{},
			listings: map[string][]string{},
			redacted: map[string]bool{},
		},
		cancel: cancel,
		known:  known,
	}
	for _, r := range roots {
		cr.visit(ctx, strings.TrimPrefix(r, "/"))
	}
	cr.wg.Wait()
	if cr.err != nil {
		return nil, cr.err
	}
	return cr.tree, nil
}

type crawler struct {
	client *Client
	sem    chan struct{}
	wg     sync.WaitGroup
	cancel context.CancelFunc
	known  map[string]string

	mu   sync.Mutex
	tree *Tree
	err  error
}

func (cr *crawler) visit(ctx context.Context, path string) {
	if isSecret(path) && !strings.HasSuffix(path, "/") {
		cr.mu.Lock()
		cr.tree.redacted[path] = true
		cr.mu.Unlock()
		return
	}
	if v, ok := cr.known[path]; ok && !strings.HasSuffix(path, "/") {
		cr.mu.Lock()
		cr.tree.values[path] = v
		cr.mu.Unlock()
		return
	}
	cr.wg.Add(1)
	go func() {
		defer cr.wg.Done()
		select {
		case cr.sem <- struct{}{}:
		case <-ctx.Done():
			cr.fail(ctx.Err())
			return
		}
		body, err := cr.client.GetRaw(ctx, "latest/"+path)
		<-cr.sem
		if errors.Is(err, ErrNotFound) {
			return
		}
		if err != nil {
			cr.fail(err)
			return
		}
		if !strings.HasSuffix(path, "/") {
			cr.mu.Lock()
			cr.tree.values[path] = string(body)
			cr.mu.Unlock()
			return
		}
		items := splitListing(string(body))
		cr.mu.Lock()
		cr.tree.listings[path] = items
		cr.mu.Unlock()
		for _, item := range items {
			cr.visit(ctx, childPath(path, item))
		}
	}()
}

func (cr *crawler) fail(err error) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.err == nil {
		cr.err = err
		cr.cancel()
	}
}

func splitListing(body string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
