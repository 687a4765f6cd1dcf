// "Latest" resolved: a version manifest, or the newest object under an S3
// prefix by semantic-version order.

package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ec2init/ec2init/agent/redact"
)

// ErrNoVersion is a version source that names no version: a manifest
// without one, an S3 prefix with no versioned object.
var ErrNoVersion = errors.New("no version")

// Resolved is what a version source says.
type Resolved struct {
	Version string
	// URL is the artifact's (the manifest's url, relative to the
	// manifest; the S3 object chosen); empty when the manifest gives none.
	URL string
	// SHA256, SHA512 and SignatureURL are the manifest's, when it has them.
	SHA256, SHA512 string
	SignatureURL   string
}

const maxManifestBytes = 64 << 10

// ResolveVersion reads the version source from: an https, file or s3 URL
// of a manifest (JSON {"version", "url", "sha256"|"sha512"|"signature_url"},
// or text whose first line is the version), or s3://bucket/prefix/ (ending
// in "/"), whose object with the highest semantic version in its name is
// chosen (listed with the instance role).
func (f *ArtifactFetcher) ResolveVersion(ctx context.Context, name, from string, allowInsecure bool) (Resolved, error) {
	u, rem, err := f.resolveFrom(from, allowInsecure)
	if err != nil {
		return Resolved{}, err
	}
	if u.Scheme == "s3" && (strings.HasSuffix(u.Path, "/") || strings.TrimPrefix(u.Path, "/") == "") {
		return f.newestInS3(ctx, u, allowInsecure)
	}
	body, err := f.getSmallCapped(ctx, name, u, rem, maxManifestBytes)
	if err != nil {
		return Resolved{}, fmt.Errorf("version manifest: %w", err)
	}
	r, err := parseVersionManifest(body, u)
	if err != nil {
		return Resolved{}, fmt.Errorf("version manifest %s: %w", redact.URL(u.String()), err)
	}
	return r, nil
}

// resolveFrom is resolve, accepting an S3 prefix (no key) too.
func (f *ArtifactFetcher) resolveFrom(from string, allowInsecure bool) (*url.URL, remote, error) {
	u, err := url.Parse(from)
	if err == nil && u.Scheme == "s3" && u.Host != "" && strings.TrimPrefix(u.Path, "/") == "" {
		return u, s3Remote{f: f, allowInsecure: allowInsecure}, nil
	}
	return f.resolve(from, allowInsecure)
}

func parseVersionManifest(body []byte, base *url.URL) (Resolved, error) {
	text := bytes.TrimSpace(body)
	var r Resolved
	if bytes.HasPrefix(text, []byte("{")) {
		var doc struct {
			Version      string `json:"version"`
			URL          string `json:"url"`
			SHA256       string `json:"sha256"`
			SHA512       string `json:"sha512"`
			SignatureURL string `json:"signature_url"`
		}
		if err := json.Unmarshal(text, &doc); err != nil {
			return r, fmt.Errorf("not a JSON manifest: %w", err)
		}
		r = Resolved{Version: strings.TrimSpace(doc.Version), SHA256: doc.SHA256, SHA512: doc.SHA512}
		for _, p := range []struct {
			raw string
			dst *string
		}{{doc.URL, &r.URL}, {doc.SignatureURL, &r.SignatureURL}} {
			if p.raw == "" {
				continue
			}
			ref, err := url.Parse(p.raw)
			if err != nil {
				return r, fmt.Errorf("%q is not a URL", redact.URL(p.raw))
			}
			*p.dst = base.ResolveReference(ref).String()
		}
		for _, d := range []struct{ algo, sum string }{{"sha256", r.SHA256}, {"sha512", r.SHA512}} {
			if d.sum != "" {
				if _, err := parseDigest(d.algo, d.sum); err != nil {
					return r, err
				}
			}
		}
	} else {
		line, _, _ := bytes.Cut(text, []byte("\n"))
		r.Version = strings.TrimSpace(string(line))
	}
	if r.Version == "" {
		return r, fmt.Errorf("%w in it", ErrNoVersion)
	}
	if err := CheckVersion(r.Version); err != nil {
		return r, err
	}
	return r, nil
}

// CheckVersion refuses a version that could not be put into a URL or a
// path as it is.
func CheckVersion(v string) error {
	if len(v) > 128 || v == "." || v == ".." || strings.ContainsFunc(v, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_+~", c))
	}) {
		return fmt.Errorf("version %q: want letters, digits and . - _ + ~ only", v)
	}
	return nil
}

// semverRe finds a version in an object's name: MAJOR.MINOR[.PATCH] with
// an optional -prerelease (identifiers up to the first non-numeric dotted
// part, so "1.2.3-rc1.tar.gz" is 1.2.3-rc1).
var semverRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z-]+(?:\.[0-9]+)*))?`)
})

// Objects next to the artifacts that carry no version of their own.
var sidecarSuffixes = []string{".sha256", ".sha512", ".sha256sum", ".sha512sum", ".minisig", ".sig", ".asc", ".json"}

type semver struct {
	nums [3]int
	pre  string
	text string
}

func parseSemver(name string) (semver, bool) {
	m := semverRe().FindStringSubmatch(name)
	if m == nil {
		return semver{}, false
	}
	var v semver
	for i := range 3 {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return semver{}, false
		}
		v.nums[i] = n
	}
	v.pre, v.text = m[4], m[0]
	return v, true
}

// compareSemver orders versions as semver.org does: numbers, then a
// release above its prereleases, prerelease identifiers numeric below
// alphanumeric.
func compareSemver(a, b semver) int {
	for i := range 3 {
		if a.nums[i] != b.nums[i] {
			return a.nums[i] - b.nums[i]
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	ap, bp := strings.Split(a.pre, "."), strings.Split(b.pre, ".")
	for i := 0; i < len(ap) && i < len(bp); i++ {
		an, aerr := strconv.Atoi(ap[i])
		bn, berr := strconv.Atoi(bp[i])
		switch {
		case aerr == nil && berr == nil:
			if an != bn {
				return an - bn
			}
		case aerr == nil:
			return -1
		case berr == nil:
			return 1
		default:
			if c := strings.Compare(ap[i], bp[i]); c != 0 {
				return c
			}
		}
	}
	return len(ap) - len(bp)
}

// newestInS3 lists the prefix and picks the object with the highest
// version in its name (below the prefix).
func (f *ArtifactFetcher) newestInS3(ctx context.Context, u *url.URL, allowInsecure bool) (Resolved, error) {
	bucket, prefix := u.Host, strings.TrimPrefix(u.Path, "/")
	var best semver
	var bestKey string
	var tie []string
	var token *string
	for {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), ContinuationToken: token}
		var out *s3.ListObjectsV2Output
		// Through the one retry loop: a 503 or a dropped connection while
		// listing is as passing as one while downloading.
		_, err := f.retry.run(ctx, "version list", u, func(actx context.Context, _ context.CancelCauseFunc) (bool, error) {
			return false, f.withS3(actx, allowInsecure, bucket, func(c *s3.Client) error {
				var err error
				out, err = c.ListObjectsV2(actx, in)
				return err
			})
		})
		if err != nil {
			return Resolved{}, fmt.Errorf("version from %s: %w", redact.URL(u.String()), s3Error(bucket, prefix, err))
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			rest := strings.TrimPrefix(key, prefix)
			if rest == "" || strings.HasSuffix(rest, "/") || hasSidecarSuffix(rest) {
				continue
			}
			v, ok := parseSemver(path.Base(rest))
			if !ok {
				continue
			}
			switch c := compareSemver(v, best); {
			case bestKey == "" || c > 0:
				best, bestKey, tie = v, key, nil
			case c == 0 && v.text == best.text:
				tie = append(tie, key)
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			break
		}
		token = out.NextContinuationToken
	}
	if bestKey == "" {
		return Resolved{}, fmt.Errorf("version from %s: %w: no object with a version in its name under the prefix", redact.URL(u.String()), ErrNoVersion)
	}
	if len(tie) > 0 {
		return Resolved{}, fmt.Errorf("version from %s: version %s is in %d objects (%s, %s); narrow the prefix",
			redact.URL(u.String()), best.text, len(tie)+1, bestKey, tie[0])
	}
	return Resolved{Version: best.text, URL: (&url.URL{Scheme: "s3", Host: bucket, Path: "/" + bestKey}).String()}, nil
}

func hasSidecarSuffix(name string) bool {
	for _, s := range sidecarSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}
