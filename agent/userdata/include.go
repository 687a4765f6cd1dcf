package userdata

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/ec2init/ec2init/agent/redact"
)

// Include is one URL of an #include part.
type Include struct {
	URL  string
	Once bool // in an #include-once section: fetch once per instance
}

// ParseIncludes lists the URLs of an #include or #include-once body as
// cloud-init reads it: one per line, blank lines and '#' comments skipped. A
// line starting "#include-once" or "#include" may carry a URL after it and
// switches include-once on or off for the lines after it, so a MIME part typed
// text/x-include-once-url without that first line is fetched every time, as in
// cloud-init.
func ParseIncludes(body []byte) []Include {
	var out []Include
	once := false
	for _, line := range splitLinesPy(string(stripBOM(body))) {
		switch {
		case hasPrefixFold(line, "#include-once"):
			line, once = strings.TrimLeftFunc(line[len("#include-once"):], unicode.IsSpace), true
		case hasPrefixFold(line, "#include"):
			line, once = strings.TrimLeftFunc(line[len("#include"):], unicode.IsSpace), false
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if u := strings.TrimSpace(line); u != "" {
			out = append(out, Include{URL: u, Once: once})
		}
	}
	return out
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// splitLinesPy splits like Python's str.splitlines, which cloud-init uses.
func splitLinesPy(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		switch r {
		case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			return true
		}
		return false
	})
}

// Resolve replaces every #include part of res by the user data its URLs hold,
// fetched with fetch (or opts.OnceFetcher for #include-once sections) and
// parsed like user data: gzip, MIME, archives, includes within includes up to
// opts.MaxIncludeDepth. The result is numbered as cloud-init would number it.
// Only https:// URLs are fetched (http:// too with AllowInsecureInclude); a
// failed or refused include is an error, as in cloud-init. res is not changed.
func Resolve(ctx context.Context, res *Result, fetch Fetcher, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	b := &budget{max: opts.MaxSize}
	for _, p := range res.Parts {
		if p.Kind != KindInclude && p.Kind != KindIncludeOnce {
			b.used += int64(len(p.Body))
		}
	}
	r := &resolver{opts: opts, fetch: fetch, budget: b}
	out, err := r.resolve(ctx, res, 0)
	if err != nil {
		return nil, err
	}
	out.finalize()
	return out, nil
}

type resolver struct {
	opts    Options
	fetch   Fetcher
	budget  *budget
	fetched int
}

// resolve splices included parts in place of include parts. Part numbers
// (part-NNN) continue through included content as in cloud-init, where the
// included parts are attached where the include was.
func (r *resolver) resolve(ctx context.Context, res *Result, depth int) (*Result, error) {
	out := &Result{global: append([]Warning(nil), res.global...)}
	shift := 0 // part numbers taken by included content so far
	for _, p := range res.Parts {
		if p.Kind != KindInclude && p.Kind != KindIncludeOnce {
			p.seq += shift
			out.Parts = append(out.Parts, p)
			continue
		}
		label := partLabel(len(out.Parts), p.Filename, p.ContentType)
		if depth >= r.opts.MaxIncludeDepth {
			return nil, fmt.Errorf("user data: %s: %w: includes nested more than %d deep", label, ErrInclude, r.opts.MaxIncludeDepth)
		}
		incs := ParseIncludes(p.Body)
		for i, inc := range incs {
			where := fmt.Sprintf("%s: include %d of %d", label, i+1, len(incs))
			sub, err := r.one(ctx, inc, where, depth)
			if err != nil {
				return nil, err
			}
			for _, sp := range sub.Parts {
				sp.seq += p.seq + shift
				out.Parts = append(out.Parts, sp)
			}
			if len(out.Parts) > r.opts.MaxParts {
				return nil, fmt.Errorf("user data: %s: %w", where, &limitError{what: "number of parts", limit: int64(r.opts.MaxParts), count: true})
			}
			out.global = append(out.global, sub.global...)
			shift += sub.slots
		}
	}
	out.slots = res.slots + shift
	return out, nil
}

// one fetches and parses one URL, then resolves what it includes.
func (r *resolver) one(ctx context.Context, inc Include, where string, depth int) (*Result, error) {
	u, err := checkURL(inc.URL, r.opts.AllowInsecureInclude)
	if err != nil {
		return nil, fmt.Errorf("user data: %s: %w: %w", where, ErrInclude, err)
	}
	shown := redact.Origin(u.String())
	where += " (" + shown + ")"
	if r.fetched >= r.opts.MaxIncludes {
		return nil, fmt.Errorf("user data: %s: %w: more than %d URLs", where, ErrInclude, r.opts.MaxIncludes)
	}
	r.fetched++
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("user data: %s: %w", where, err)
	}
	fetch := r.fetch
	if inc.Once && r.opts.OnceFetcher != nil {
		fetch = r.opts.OnceFetcher
	}
	if fetch == nil {
		return nil, fmt.Errorf("user data: %s: %w: no fetcher", where, ErrInclude)
	}
	body, err := fetch(ctx, inc.URL)
	if err != nil {
		return nil, fmt.Errorf("user data: %s: %w: %w", where, ErrInclude, &redactedError{err: err, secrets: []string{inc.URL, u.String(), u.Redacted(), redact.URL(inc.URL)}, shown: shown})
	}
	if int64(len(body)) > r.budget.remaining() {
		return nil, fmt.Errorf("user data: %s: %w", where, &limitError{what: "included user data", limit: r.budget.max})
	}
	p := newParser(r.opts, r.budget, shown)
	if err := p.userData(body); err != nil {
		return nil, &includedError{where: where, err: err}
	}
	out, err := r.resolve(ctx, p.result(), depth+1)
	if err != nil {
		return nil, &includedError{where: where, err: err}
	}
	return out, nil
}

// checkURL allows https (and http if asked) URLs with a host: never file://,
// s3:// or bare paths, which cloud-init would read from the instance itself.
func checkURL(raw string, allowHTTP bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	switch scheme := strings.ToLower(u.Scheme); {
	case scheme == "https":
	case scheme == "http" && allowHTTP:
	case scheme == "http":
		return nil, errors.New("http:// URLs are refused (https only; see AllowInsecureInclude)")
	case scheme == "":
		return nil, errors.New("not an absolute https:// URL")
	case knownSchemes[scheme]:
		return nil, fmt.Errorf("%s:// URLs are refused (https only)", scheme)
	default: // not named: "password:xyz" parses as a URL with scheme "password"
		return nil, errors.New("this URL scheme is refused (https only)")
	}
	if u.Host == "" {
		return nil, errors.New("URL has no host")
	}
	return u, nil
}

// knownSchemes are named in errors; other schemes may be text that is not a URL.
var knownSchemes = map[string]bool{"file": true, "s3": true, "ftp": true, "ftps": true, "sftp": true, "gs": true, "data": true}

// redactedError hides the URL in a fetcher's error (net/http quotes it whole)
// while keeping the error chain for errors.Is/As. The include's own URL,
// in whatever form the fetcher quoted it, becomes the include's origin (its
// path can be the credential); any other URL (a redirect's) goes through
// redact.Text.
type redactedError struct {
	err     error
	secrets []string
	shown   string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		// A form that is part of shown ("https://h/" of "https://h/...")
		// is already hidden, and replacing it would garble shown.
		if s != "" && !strings.Contains(e.shown, s) {
			msg = strings.ReplaceAll(msg, s, e.shown)
		}
	}
	return redact.Text(msg)
}

func (e *redactedError) Unwrap() error { return e.err }

// includedError puts an error from included content under the include that
// brought it: "user data: part 1 ...: include 1 of 1 (https://host/...): part 0 ...".
type includedError struct {
	where string
	err   error
}

func (e *includedError) Error() string {
	return "user data: " + e.where + ": " + strings.TrimPrefix(e.err.Error(), "user data: ")
}

func (e *includedError) Unwrap() error { return e.err }
