package ec2metadata

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
)

// Getter fetches a path below the IMDS root ("latest/meta-data/ami-id").
// *imds.Client satisfies it.
type Getter interface {
	GetRaw(ctx context.Context, path string) ([]byte, error)
}

// TokenError reports whether an error means no IMDSv2 token could be had,
// the one failure ec2-metadata treats as fatal.
type TokenError func(error) bool

// ErrNoToken is returned when IMDS refused or never answered the token
// request; NoTokenMessage is what ec2-metadata prints then.
var ErrNoToken = errors.New("no IMDSv2 token")

// NoTokenMessage is ec2-metadata's stderr line when no token can be had.
const NoTokenMessage = "[ERROR] Could not get IMDSv2 token. Instance Metadata might have been disabled or this is not an EC2 instance."

// metric is one "name: value" line of ec2-metadata, in --all order.
type metric struct{ option, label, path string }

var metrics = []metric{
	{"ami-id", "ami-id", "meta-data/ami-id"},
	{"ami-launch-index", "ami-launch-index", "meta-data/ami-launch-index"},
	{"ami-manifest-path", "ami-manifest-path", "meta-data/ami-manifest-path"},
	{"ancestor-ami-ids", "ancestor-ami-ids", "meta-data/ancestor-ami-ids"},
	{"block-device-mapping", "", ""},
	{"instance-id", "instance-id", "meta-data/instance-id"},
	{"instance-type", "instance-type", "meta-data/instance-type"},
	{"local-hostname", "local-hostname", "meta-data/local-hostname"},
	{"local-ipv4", "local-ipv4", "meta-data/local-ipv4"},
	{"kernel-id", "kernel-id", "meta-data/kernel-id"},
	{"availability-zone", "placement", "meta-data/placement/availability-zone"},
	{"region", "region", "meta-data/placement/region"},
	{"partition", "partition", "meta-data/services/partition"},
	{"product-codes", "product-codes", "meta-data/product-codes"},
	{"public-hostname", "public-hostname", "meta-data/public-hostname"},
	{"public-ipv4", "public-ipv4", "meta-data/public-ipv4"},
	{"public-keys", "", ""},
	{"ramdisk-id", "ramdisk-id", "meta-data/ramdisk-id"},
	{"reservation-id", "reservation-id", "meta-data/reservation-id"},
	{"security-groups", "security-groups", "meta-data/security-groups"},
	{"user-data", "user-data", "user-data"},
	{"tags", "", ""},
}

// Render writes what ec2-metadata prints for args. Every action is fetched
// concurrently and printed in order, so the output is the script's but the
// wait is a few round trips, not one per line. A failed fetch prints as
// "not available", as curl -f does in the script; a missing token fails
// the whole command with ErrNoToken.
func Render(ctx context.Context, g Getter, isTokenErr TokenError, args Args) ([]byte, error) {
	actions := args.Actions
	if len(actions) == 0 && !args.Quiet {
		actions = []Action{{Name: "all"}}
	}
	// --all prints everything and exits: later actions never run.
	for i, a := range actions {
		if a.Name == "all" {
			actions = append(actions[:i:i], allActions()...)
			break
		}
	}
	r := &renderer{g: g, quiet: args.Quiet, isTokenErr: isTokenErr}
	outs := make([]bytes.Buffer, len(actions))
	var wg sync.WaitGroup
	for i, a := range actions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.action(ctx, &outs[i], a)
		}()
	}
	wg.Wait()
	if r.noToken {
		return nil, ErrNoToken
	}
	var out bytes.Buffer
	for i := range outs {
		out.Write(outs[i].Bytes())
	}
	return out.Bytes(), nil
}

func allActions() []Action {
	out := make([]Action, len(metrics))
	for i, m := range metrics {
		out[i] = Action{Name: m.option}
	}
	return out
}

type renderer struct {
	g          Getter
	quiet      bool
	isTokenErr TokenError

	mu      sync.Mutex
	noToken bool
}

// get is the script's get_meta: the body with trailing newlines removed
// (what $(...) does), or "" on any failure.
func (r *renderer) get(ctx context.Context, path string) string {
	b, err := r.g.GetRaw(ctx, path)
	if err != nil {
		if r.isTokenErr != nil && r.isTokenErr(err) {
			r.mu.Lock()
			r.noToken = true
			r.mu.Unlock()
		}
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// getAll fetches paths concurrently, keeping their order.
func (r *renderer) getAll(ctx context.Context, paths []string) []string {
	vals := make([]string, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals[i] = r.get(ctx, p)
		}()
	}
	wg.Wait()
	return vals
}

func (r *renderer) action(ctx context.Context, w *bytes.Buffer, a Action) {
	switch a.Name {
	case "block-device-mapping":
		r.blockDevices(ctx, w)
	case "public-keys":
		r.publicKeys(ctx, w)
	case "tags":
		r.tags(ctx, w)
	case "path":
		label, path := NormalizePath(a.Path)
		r.normal(ctx, w, label, path)
	default:
		for _, m := range metrics {
			if m.option == a.Name {
				r.normal(ctx, w, m.label, "latest/"+m.path)
				return
			}
		}
	}
}

func (r *renderer) normal(ctx context.Context, w *bytes.Buffer, label, path string) {
	if !r.quiet {
		w.WriteString(label + ": ")
	}
	if v := r.get(ctx, path); v != "" {
		w.WriteString(v + "\n")
	} else {
		w.WriteString("not available\n")
	}
}

// listing splits a directory body the way an unquoted "for i in $x" does.
func (r *renderer) listing(ctx context.Context, dir string) []string {
	return strings.Fields(r.get(ctx, dir))
}

func (r *renderer) blockDevices(ctx context.Context, w *bytes.Buffer) {
	if !r.quiet {
		w.WriteString("block-device-mapping: \n")
	}
	const dir = "latest/meta-data/block-device-mapping/"
	names := r.listing(ctx, dir)
	if len(names) == 0 {
		w.WriteString("not available\n")
		return
	}
	vals := r.getAll(ctx, prefixed(dir, names))
	for i, name := range names {
		if !r.quiet {
			w.WriteString("\t " + name + ": ")
		}
		w.WriteString(vals[i] + "\n")
	}
}

func (r *renderer) publicKeys(ctx context.Context, w *bytes.Buffer) {
	if !r.quiet {
		w.WriteString("public-keys: \n")
	}
	const dir = "latest/meta-data/public-keys/"
	items := r.listing(ctx, dir)
	if len(items) == 0 {
		w.WriteString("not available\n")
		return
	}
	for _, item := range items {
		// cut -d = -f N prints the whole word when it has no "=".
		index, keyname := item, item
		if i := strings.IndexByte(item, '='); i >= 0 {
			index, keyname = item[:i], strings.SplitN(item[i+1:], "=", 2)[0]
		}
		format := r.get(ctx, dir+index+"/")
		if !r.quiet {
			w.WriteString("keyname:" + keyname + "\n")
			w.WriteString("index:" + index + "\n")
			// Unquoted in the script: word splitting joins lines with spaces.
			w.WriteString("format:" + strings.Join(strings.Fields(format), " ") + "\n")
			w.WriteString("key:(begins from next line)\n")
		}
		w.WriteString(r.get(ctx, dir+index+"/"+format) + "\n")
	}
}

func (r *renderer) tags(ctx context.Context, w *bytes.Buffer) {
	if !r.quiet {
		w.WriteString("tags: \n")
	}
	const dir = "latest/meta-data/tags/instance/"
	keys := r.listing(ctx, dir)
	if len(keys) == 0 {
		w.WriteString("not available\n")
		return
	}
	vals := r.getAll(ctx, prefixed(dir, keys))
	for i, k := range keys {
		// The script prints tag keys even with --quiet.
		w.WriteString("\t " + k + ": " + vals[i] + "\n")
	}
}

func prefixed(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = dir + n
	}
	return out
}

var (
	slashes     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`/+`) })
	versioned   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/$|^/?(1\.0|[0-9]{4}-[0-9]{2}-[0-9]{2}|latest)`) })
	topCategory = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/?(dynamic|meta-data)`) })
)

// NormalizePath applies ec2-metadata's --path rules: a path is relative to
// latest/meta-data/ unless it names meta-data or dynamic (then latest/) or
// starts with a version. It returns the label printed and the path fetched.
func NormalizePath(p string) (label, fetch string) {
	p = slashes().ReplaceAllString(p, "/")
	if !versioned().MatchString(p) {
		if topCategory().MatchString(p) {
			p = "latest/" + p
		} else {
			p = "latest/meta-data/" + p
		}
	}
	p = slashes().ReplaceAllString(p, "/")
	return p, strings.TrimPrefix(p, "/")
}
