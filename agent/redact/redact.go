// Package redact is the one place a URL is made fit for a message, a log
// line or a status file. Presigned URLs carry their credentials in the
// query (X-Amz-Security-Token, X-Amz-Signature), URLs can carry a password
// in their userinfo, and net/http quotes the whole URL in its errors, so
// every URL that may reach text goes through URL, and every error that may
// quote one through Error.
//
// The form: scheme, host and path are kept (they say which server and which
// object: an S3 bucket and key); userinfo, the query and the fragment are
// dropped entirely, not masked key by key, so no part of a signed query
// (whose parameter names can be anything) survives. Origin is stricter still,
// for URLs whose path may itself be the credential (an #include URL).
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Unparsable stands for a URL that does not parse: its text is not shown,
// since it cannot be told apart from a secret.
const Unparsable = "(unparsable URL)"

// URL returns raw without userinfo, query and fragment. It is idempotent, so
// text redacted twice reads the same. A URL with no "//" authority (an
// opaque URL such as "password:hunter2") keeps only its scheme.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Unparsable
	}
	return clean(u)
}

// clean is URL for a parsed URL; u is not changed.
func clean(u *url.URL) string {
	if u.Opaque != "" {
		return u.Scheme + ":..."
	}
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// Origin returns "scheme://host", with "/..." when raw had more (a path, a
// query): what names the server, nothing that could grant access.
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Unparsable
	}
	if u.Opaque != "" || u.Host == "" {
		return clean(u)
	}
	s := strings.ToLower(u.Scheme) + "://" + u.Host
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		s += "/..."
	}
	return s
}

// urlRE finds URL-looking text: a scheme, "://", then anything up to a space
// or a quote. Trailing punctuation is trimmed off the match afterwards.
var urlRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'<>`]+") })

// Text rewrites every URL-looking substring of s with URL.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlRE().ReplaceAllStringFunc(s, func(m string) string {
		// "(https://h/a)." keeps its ")." outside the URL.
		trimmed := strings.TrimRight(m, ".,;:)]}")
		return URL(trimmed) + m[len(trimmed):]
	})
}

// Error returns err with every URL in its text redacted (see Text), keeping
// the chain for errors.Is and errors.As. A *url.Error (which net/http
// returns with the whole request URL) has its URL field redacted in place,
// so code that reads the field sees no credentials either. nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = URL(ue.URL)
	}
	if re, ok := err.(*redactedError); ok {
		return re
	}
	return &redactedError{err: err}
}

type redactedError struct{ err error }

func (e *redactedError) Error() string { return Text(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }
