package userdata

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxMIMEDepth bounds nesting of multiparts and message/rfc822 wrappers;
// real user data nests once or twice.
const maxMIMEDepth = 20

// Parse decodes user data into parts as cloud-init's UserDataProcessor does:
// gunzip, MIME split, classification, #cloud-config-archive expansion and
// part-NNN naming. #include parts are returned unresolved (see Resolve) and
// jinja parts rendered only if opts.Vars is set. Empty user data gives zero
// parts. Errors (corrupt gzip, size limits, a template that cannot be
// rendered) stop everything; problems with one part are Warnings.
func Parse(raw []byte, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	p := newParser(opts, &budget{max: opts.MaxSize}, "")
	if err := p.userData(raw); err != nil {
		return nil, err
	}
	return p.result(), nil
}

// parser accumulates the parts of one user-data blob (the user data itself
// or one included document).
type parser struct {
	opts   Options
	budget *budget
	source string // redacted include URL, "" for the user data itself
	parts  []Part
	global []Warning
	slots  int // cloud-init's attachment counter: names part-NNN
}

func newParser(opts Options, b *budget, source string) *parser {
	return &parser{opts: opts, budget: b, source: source}
}

func (p *parser) result() *Result {
	r := &Result{Parts: p.parts, global: p.global, slots: p.slots}
	r.finalize()
	return r
}

func (p *parser) warn(code WarnCode, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.source != "" {
		msg = "included from " + p.source + ": " + msg
	}
	p.global = append(p.global, Warning{Part: -1, Code: code, Message: msg})
}

// userData is cloud-init's convert_string plus _process_msg: one blob.
func (p *parser) userData(raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	data := raw
	if isGzip(data) {
		out, err := gunzip(data, p.budget.remaining(), p.opts.MaxSize)
		if err != nil {
			return fmt.Errorf("user data: %w", err)
		}
		data = out
	}
	// A BOM would hide the MIME headers; cloud-init would then ignore everything.
	data = stripBOM(data)
	if isMIME(data) {
		return p.entity(parseEntity(data), 0)
	}
	return p.leaf(TypeNotMultipart, entity{body: data}, data)
}

// entity walks a MIME entity in the order Python's Message.walk does.
func (p *parser) entity(e entity, depth int) error {
	if depth > maxMIMEDepth {
		return fmt.Errorf("user data: MIME parts nested more than %d deep", maxMIMEDepth)
	}
	ctype := e.contentType()
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		v, _ := e.get("Content-Type")
		boundary, ok := param(v, "boundary")
		if !ok {
			// cloud-init silently skips such a message and everything in it.
			p.warn(WarnMalformed, "%s message has no boundary parameter; its content is ignored", safeType(ctype))
			return nil
		}
		m := splitMultipart(e.body, strings.TrimRight(boundary, " \t\r\n"))
		if !m.started {
			p.warn(WarnMalformed, "%s message has no part (boundary line not found); its content is ignored", safeType(ctype))
			return nil
		}
		for _, raw := range m.parts {
			if err := p.entity(parseEntity(raw), depth+1); err != nil {
				return err
			}
		}
		return nil
	case strings.HasPrefix(ctype, "message/"):
		// cloud-init attaches the empty wrapper (it takes a part number), then
		// walks into the message inside. Its handlers then walk the wrapper's
		// content a second time, running those parts twice; we do not.
		p.slots++
		return p.entity(parseEntity(e.body), depth+1)
	}
	return p.leaf(ctype, e, decodeTransfer(e))
}

// leaf is the body of cloud-init's _process_msg loop for one part.
func (p *parser) leaf(ctype string, e entity, payload []byte) error {
	part := Part{ContentType: ctype, Filename: e.filename(), Source: p.source, MergeType: e.mergeType()}
	if v, ok := e.get("Launch-Index"); ok {
		part.LaunchIndex = launchIndex(v)
	}
	if decompTypes[ctype] {
		out, err := gunzip(payload, p.budget.remaining(), p.opts.MaxSize)
		if err != nil {
			return p.partErr(part, 0, err)
		}
		payload, part.ContentType = out, TypePlain
	}
	// As in cloud-init, only untyped parts and text/x-shellscript are
	// classified by content: a real script starts with #!, so any other
	// recognised first line means the type was wrong.
	switch part.ContentType {
	case TypePlain, TypeNotMultipart, TypeScript:
		if t := typeFromStartsWith(payload); t != "" {
			part.ContentType = t
		}
	}
	part.Body = payload
	switch part.ContentType {
	case TypeInclude, TypeIncludeOnce:
		return p.include(part)
	case TypeArchive:
		return p.archive(part)
	}
	return p.attach(part, false)
}

// include keeps an #include part for Resolve. It takes no part number: in
// cloud-init its content replaces it.
func (p *parser) include(part Part) error {
	part.Kind = KindOf(part.ContentType)
	part.Body = stripBOM(part.Body)
	part.seq = p.slots
	return p.add(part)
}

// attach is cloud-init's _attach_part: number the part and name it if
// unnamed, then finish it.
func (p *parser) attach(part Part, fromArchive bool) error {
	p.slots++
	part.seq = p.slots
	if part.Filename == "" {
		part.autoName = true
		part.Filename = fmt.Sprintf("part-%03d", part.seq)
	}
	part.Kind = KindOf(part.ContentType)
	if fromArchive && (part.Kind == KindInclude || part.Kind == KindIncludeOnce || part.Kind == KindCloudConfigArchive) {
		part.Kind = KindUnknown
		part.warns = append(part.warns, warned{WarnIgnored, "not processed inside a #cloud-config-archive (cloud-init ignores it too)"})
		return p.add(part)
	}
	keep, err := p.finish(&part, len(p.parts))
	if err != nil || !keep {
		return err
	}
	return p.add(part)
}

// finish renders a template (if Vars are set), prepares the body for its
// handler and records what is wrong with it. keep is false for a part with
// nothing in it that nothing would handle.
func (p *parser) finish(part *Part, index int) (keep bool, err error) {
	if part.Kind == KindJinja && p.opts.Vars != nil {
		rendered, err := render(*part, p.opts.Vars, index)
		var pe *PartError
		switch {
		case errors.Is(err, ErrTemplate) && errors.As(err, &pe):
			// As cloud-init's jinja handler: a template that cannot be
			// rendered is that part skipped, with a warning; the others run.
			part.Kind = KindUnknown
			msg := strings.TrimSuffix(pe.Err.Error(), ".")
			if pe.Line > 0 {
				msg = fmt.Sprintf("line %d: %s", pe.Line, msg)
			}
			part.warns = append(part.warns, warned{WarnTemplate, msg + "; the part is not run (cloud-init skips it too)"})
			return true, nil
		case err != nil:
			return false, err
		}
		*part = rendered
	}
	if part.Kind == KindUnknown && len(part.Body) == 0 {
		return false, nil // cloud-init: "Empty payload", nothing to say
	}
	if part.LaunchIndex == nil && part.Kind == KindCloudConfig {
		part.LaunchIndex = launchIndexInConfig(part.Body)
	}
	switch {
	case part.Kind.IsScript():
		part.Body = normalizeScript(part.Body)
		if !bytes.HasPrefix(part.Body, []byte("#!")) {
			part.warns = append(part.warns, warned{WarnNotExecutable, "script does not start with #! and cannot be executed: " + shape(part.Body)})
		}
	case part.Kind != KindUnknown:
		part.Body = stripBOM(part.Body)
	}
	switch part.Kind {
	case KindPartHandler:
		part.warns = append(part.warns, warned{WarnPartHandler, "part-handler parts are not supported: ec2init does not run Python handlers"})
	case KindUnknown:
		part.warns = append(part.warns, unknownWarning(*part))
	}
	if part.LaunchIndex != nil && *part.LaunchIndex < 0 {
		part.warns = append(part.warns, warned{WarnMalformed, "Launch-Index is not a number; the part applies to no instance"})
	}
	return true, nil
}

// Render fills the jinja parts of r (those Parse left as KindJinja because
// Options.Vars was nil) from vars, as Parse would have. r is not changed.
func (r *Result) Render(vars Vars) (*Result, error) {
	b := &budget{max: DefaultMaxSize}
	for _, part := range r.Parts {
		if part.Kind != KindJinja {
			b.used += int64(len(part.Body))
		}
	}
	p := newParser(Options{Vars: vars}.withDefaults(), b, "")
	p.global, p.slots = r.global, r.slots
	for _, part := range r.Parts {
		if part.Kind == KindJinja {
			part.warns = nil
			keep, err := p.finish(&part, len(p.parts))
			if err != nil {
				return nil, err
			}
			if !keep {
				continue
			}
			if err := p.budget.take(len(part.Body)); err != nil {
				return nil, p.partErr(part, 0, err)
			}
		}
		p.parts = append(p.parts, part)
	}
	return p.result(), nil
}

func unknownWarning(part Part) warned {
	if part.Template {
		return warned{WarnIgnored, "jinja template rendered to " + safeType(part.ContentType) +
			", which cloud-init does not run from a template (only #cloud-config and #! scripts): " + shape(part.Body)}
	}
	if part.ContentType == TypeNotMultipart || part.ContentType == TypePlain {
		return warned{WarnNoHeader, "no recognised header (the first line must be #!, #cloud-config, #cloud-boothook, " +
			"#include, #cloud-config-archive or ## template: jinja): " + shape(part.Body)}
	}
	return warned{WarnUnsupportedType, "unsupported content type: " + shape(part.Body)}
}

// add counts the part against the limits and keeps it.
func (p *parser) add(part Part) error {
	if len(p.parts) >= p.opts.MaxParts {
		return p.partErr(part, 0, &limitError{what: "number of parts", limit: int64(p.opts.MaxParts), count: true})
	}
	if err := p.budget.take(len(part.Body)); err != nil {
		return p.partErr(part, 0, err)
	}
	p.parts = append(p.parts, part)
	return nil
}

func (p *parser) partErr(part Part, line int, err error) error {
	return &PartError{Part: len(p.parts), Filename: part.Filename, ContentType: part.ContentType, Line: line, Err: err}
}

// launchIndex parses a Launch-Index value; -1 if it is not an integer.
func launchIndex(v string) *int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		n = -1
	}
	return &n
}

// launchIndexInConfig finds a top-level "launch-index" key in a cloud-config,
// which cloud-init honours like the header.
func launchIndexInConfig(body []byte) *int {
	if !bytes.Contains(body, []byte("launch-index")) {
		return nil
	}
	var doc struct {
		LaunchIndex yaml.Node `yaml:"launch-index"`
	}
	if err := safeYAML(body, &doc); err != nil || doc.LaunchIndex.Kind != yaml.ScalarNode {
		return nil
	}
	return launchIndex(doc.LaunchIndex.Value)
}
