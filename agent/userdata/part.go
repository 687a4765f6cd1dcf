package userdata

import (
	"bytes"
	"context"
	"fmt"
)

// DefaultMaxSize caps decompressed and decoded user data, like EC2's own
// 16 KiB raw limit caps what can arrive: a gzip bomb gets an error, not an OOM.
const DefaultMaxSize = 16 << 20

// Defaults for the other limits in Options.
const (
	DefaultMaxParts        = 1000
	DefaultMaxIncludeDepth = 5
	DefaultMaxIncludes     = 100
)

// Part is one piece of user data, as cloud-init would hand it to a handler.
type Part struct {
	Index    int    // position in Result.Parts
	Filename string // Content-Disposition/archive "filename", else part-NNN as cloud-init numbers them ("" for an unnamed #include)
	// Name is the part's stable name as a script file and state record:
	// unique among the parts that run the same way, made only of letters,
	// digits and "-_.+@". See nameParts.
	Name        string
	ContentType string // lower-case type/subtype, no parameters, e.g. "text/x-shellscript"
	Kind        Kind
	Body        []byte // decoded: no transfer encoding, no gzip; rendered if it was a template
	// LaunchIndex is the part's Launch-Index (MIME header, archive key or a
	// cloud-config's launch-index), nil if it has none; -1 if it is not a
	// number, which matches no instance. See Result.ForLaunchIndex.
	LaunchIndex *int
	// MergeType is the MIME part's Merge-Type (or X-Merge-Type) header:
	// how a cloud-config part merges into the ones before it
	// ("list(append)+dict(recurse_array)"); "" without one.
	MergeType string
	Template  bool   // rendered from a "## template: jinja" part
	Source    string // the #include URL (redacted: scheme and host) it came from; "" for the user data itself

	seq      int      // cloud-init's attachment number (part-NNN), for renumbering after Resolve
	autoName bool     // Filename was generated from seq
	warns    []warned // this part's warnings; Result.Warnings is built from them
}

type warned struct {
	code WarnCode
	msg  string
}

// WarnCode classifies a Warning so callers can decide what is degraded.
type WarnCode string

// Warning codes.
const (
	WarnNoHeader        WarnCode = "no-header"        // user data/part with no recognised first line (a script without #!)
	WarnUnsupportedType WarnCode = "unsupported-type" // a content type nothing handles
	WarnPartHandler     WarnCode = "part-handler"     // #part-handler: Python handlers are not run
	WarnNotExecutable   WarnCode = "not-executable"   // a script part that does not start with #!
	WarnIgnored         WarnCode = "ignored"          // something cloud-init also ignores (archive entries, includes in archives, ...)
	WarnTemplate        WarnCode = "template-error"   // a jinja part that cannot be rendered: not run
	WarnMalformed       WarnCode = "malformed"        // broken MIME structure, archive YAML or Launch-Index
)

// Warning is a problem that does not stop the other parts. Message never
// contains body bytes.
type Warning struct {
	Part        int // index into Result.Parts; -1 for the user data as a whole
	Filename    string
	ContentType string
	Code        WarnCode
	Message     string
}

func (w Warning) String() string {
	if w.Part < 0 {
		return "user data: " + w.Message
	}
	return "user data: " + partLabel(w.Part, w.Filename, w.ContentType) + ": " + w.Message
}

// Result is parsed user data.
type Result struct {
	Parts    []Part
	Warnings []Warning // the user data's own warnings first, then each part's in order

	global []Warning // warnings not about a returned part
	slots  int       // part numbers consumed, for splicing includes
}

// Options tune Parse and Resolve. The zero value is ready to use.
type Options struct {
	// MaxSize caps each gzip decompression and the total bytes of all
	// decoded bodies (including what includes bring). Default DefaultMaxSize.
	MaxSize int64
	// MaxParts caps the number of parts. Default DefaultMaxParts.
	MaxParts int
	// Vars, if set, renders "## template: jinja" parts during Parse; if nil
	// they are returned as KindJinja for a later Render.
	Vars Vars

	// AllowInsecureInclude lets #include fetch http:// URLs. https:// is always
	// allowed; every other scheme (file://, s3://, bare paths) never is.
	AllowInsecureInclude bool
	// MaxIncludeDepth caps includes within included content. Default DefaultMaxIncludeDepth.
	MaxIncludeDepth int
	// MaxIncludes caps the number of URLs fetched. Default DefaultMaxIncludes.
	MaxIncludes int
	// OnceFetcher, if set, fetches the URLs of #include-once sections (cloud-init
	// fetches those once per instance and replays a cached copy afterwards; the
	// caller owns that cache). Nil: the Fetcher given to Resolve.
	OnceFetcher Fetcher
}

// Fetcher returns the content at url. Errors it returns may be logged, with
// the URL's path and query removed (presigned URLs are secrets).
type Fetcher func(ctx context.Context, url string) ([]byte, error)

func (o Options) withDefaults() Options {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxParts <= 0 {
		o.MaxParts = DefaultMaxParts
	}
	if o.MaxIncludeDepth <= 0 {
		o.MaxIncludeDepth = DefaultMaxIncludeDepth
	}
	if o.MaxIncludes <= 0 {
		o.MaxIncludes = DefaultMaxIncludes
	}
	return o
}

// partLabel names a part for messages: part 2 "x.sh" (text/x-shellscript).
func partLabel(index int, filename, contentType string) string {
	s := fmt.Sprintf("part %d", index)
	if filename != "" {
		s += " " + safeName(filename)
	}
	if contentType != "" {
		s += " (" + safeType(contentType) + ")"
	}
	return s
}

// finalize numbers the parts, names unnamed ones like cloud-init and gathers
// the warnings. It is run again after Resolve splices parts in.
func (r *Result) finalize() {
	r.Warnings = append([]Warning(nil), r.global...)
	for i := range r.Parts {
		p := &r.Parts[i]
		p.Index = i
		if p.autoName {
			p.Filename = fmt.Sprintf("part-%03d", p.seq)
		}
		p.Name = ""
		for _, w := range p.warns {
			r.Warnings = append(r.Warnings, Warning{Part: i, Filename: p.Filename, ContentType: p.ContentType, Code: w.code, Message: w.msg})
		}
		if p.Kind == KindBoothook && !bytes.HasPrefix(p.Executable(), []byte("#!")) {
			// Told here, not kept in p.warns: finalize runs again after Resolve.
			r.Warnings = append(r.Warnings, Warning{Part: i, Filename: p.Filename, ContentType: p.ContentType, Code: WarnNotExecutable,
				Message: "boothook has no #! line after #cloud-boothook and cannot be executed (cloud-init fails it too: Exec format error); add #!/bin/sh"})
		}
	}
	nameParts(r.Parts)
}

// Executable is the file the agent writes and executes for a script or
// boothook part: Body, less a boothook's "#cloud-boothook" header (see
// stripBoothookHeader). Body stays what cloud-init hands its handler.
func (p Part) Executable() []byte {
	if p.Kind == KindBoothook {
		return stripBoothookHeader(p.Body)
	}
	return p.Body
}

// ForLaunchIndex keeps the parts meant for the instance with this
// ami-launch-index: those without a Launch-Index and those whose index
// matches, as cloud-init's launch-index filter does.
func (r *Result) ForLaunchIndex(idx int) *Result {
	out := &Result{global: r.global, slots: r.slots}
	for _, p := range r.Parts {
		if p.LaunchIndex == nil || *p.LaunchIndex == idx {
			out.Parts = append(out.Parts, p)
		}
	}
	out.finalize()
	return out
}
