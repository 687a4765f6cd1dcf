package userdata

// The Jinja engine is gonja v2 (github.com/nikolalohinski/gonja/v2): pure
// Go, maintained, Jinja2 syntax and builtins. This file is the sandbox
// around it: templates see the instance data and nothing else.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/nodes"
	gonjaparser "github.com/nikolalohinski/gonja/v2/parser"
)

// templateError is a template that cannot be rendered; line is 1-based in
// the template (after the header line), 0 if unknown.
type templateError struct {
	line int
	msg  string
}

func (e *templateError) Error() string { return ErrTemplate.Error() + ": " + e.msg }
func (e *templateError) Unwrap() error { return ErrTemplate }

var (
	errTooLarge  = errors.New("template output exceeds the size limit")
	errTooLong   = errors.New("template rendering exceeds the time limit")
	errTooMany   = errors.New("template loops exceed the step limit")
	errNoInclude = errors.New("templates cannot read files (include, import, extends)")
	lineRe       = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)\bline(?:: |=| )(\d+)`) })
)

// missingFilter is the filter wrapped around every plain {{ variable }}:
// gonja has no Undefined type, so an undefined value is told from None here.
const missingFilter = "__ec2init_missing"

const rootID = "user-data-template"

// execTemplate renders src with data under lim.
func execTemplate(src []byte, data map[string]any, lim Limits) ([]byte, error) {
	if lim == (Limits{}) {
		lim = defaultLimits
	}
	ctx, cancel := context.WithTimeout(context.Background(), lim.Timeout)
	defer cancel()
	var steps atomic.Int64
	step := func() error {
		if steps.Add(1) > int64(lim.MaxSteps) {
			return errTooMany
		}
		if ctx.Err() != nil {
			return errTooLong
		}
		return nil
	}

	loader, err := loaders.NewShiftedLoader(rootID, strings.NewReader(string(src)), refusingLoader{})
	if err != nil {
		return nil, &templateError{msg: err.Error()}
	}
	env := environment(step)
	cfg := config.New()
	cfg.TrimBlocks = true // as cloud-init's jinja Environment
	cfg.KeepTrailingNewline = true
	tmpl, err := exec.NewTemplate(rootID, cfg, loader, env)
	if err != nil {
		return nil, parseError(err, src)
	}
	markUndefined(tmpl.Root())

	w := &capWriter{max: lim.MaxOutput, ctx: ctx}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("template engine: %v", r)
			}
		}()
		done <- tmpl.Execute(w, exec.NewContext(data))
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The render goroutine stops at its next write or loop step.
		return nil, &templateError{msg: errTooLong.Error()}
	}
	if err != nil {
		return nil, runtimeError(err)
	}
	return w.buf, nil
}

func environment(step func() error) *exec.Environment {
	filters := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
	_ = filters.Register(missingFilter, undefinedFilter)
	globals := exec.EmptyContext().Update(builtins.GlobalFunctions)
	globals.Set("range", boundedRange(step))
	globals.Set("lipsum", nil) // no use in user data; large output
	return &exec.Environment{
		Context:           globals,
		Filters:           filters,
		Tests:             builtins.Tests,
		ControlStructures: builtins.ControlStructures,
		Methods:           builtins.Methods,
	}
}

// undefinedFilter: args are the variable's name and, for an attribute or
// item, the value it was looked up in. A name that exists with value None
// prints "None" as Python does; one that does not exist prints cloud-init's
// marker.
func undefinedFilter(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if !in.IsNil() || len(params.Args) == 0 {
		return in
	}
	name := params.Args[0].String()
	defined := false
	if len(params.Args) > 1 {
		parent := params.Args[1]
		if !parent.IsNil() {
			if _, ok := parent.GetItem(name); ok {
				defined = true
			} else if i, err := strconv.Atoi(name); err == nil {
				_, defined = parent.GetItem(i)
			}
		}
	} else {
		defined = e.Environment.Context.Has(name)
	}
	if defined {
		return exec.AsValue("None")
	}
	return exec.AsValue(MissingVarPrefix + name)
}

// boundedRange is Jinja's range with every item counted as a step.
func boundedRange(step func() error) func(*exec.Evaluator, *exec.VarArgs) ([]int, error) {
	return func(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
		var args []int
		for _, a := range params.Args {
			if !a.IsInteger() {
				return nil, errors.New("range: arguments must be integers")
			}
			args = append(args, a.Integer())
		}
		start, stop, inc := 0, 0, 1
		switch len(args) {
		case 1:
			stop = args[0]
		case 2:
			start, stop = args[0], args[1]
		case 3:
			start, stop, inc = args[0], args[1], args[2]
		default:
			return nil, errors.New("range: expected [start, ]stop[, step]")
		}
		if inc == 0 {
			return nil, errors.New("range: step cannot be 0")
		}
		var out []int
		for i := start; (inc > 0 && i < stop) || (inc < 0 && i > stop); i += inc {
			if err := step(); err != nil {
				return nil, err
			}
			out = append(out, i)
		}
		return out, nil
	}
}

// markUndefined wraps each plain {{ name }}, {{ a.b }} or {{ a['b'] }} in
// missingFilter. Expressions with filters are left alone, so that
// `| default(...)` still sees an undefined value.
func markUndefined(t *nodes.Template) {
	for _, n := range t.Nodes {
		markNode(n)
	}
}

func markNode(n nodes.Node) {
	switch x := n.(type) {
	case *nodes.Output:
		if args := undefinedArgs(x.Expression); args != nil {
			x.Expression = &nodes.FilteredExpression{
				Expression: x.Expression,
				Filters:    []*nodes.FilterCall{{Token: x.Start, Name: missingFilter, Args: args}},
			}
		}
	case *nodes.Wrapper:
		for _, c := range x.Nodes {
			markNode(c)
		}
	case *nodes.ControlStructureBlock:
		markFields(reflect.ValueOf(x.ControlStructure))
	case nodes.ControlStructureBlock:
		markFields(reflect.ValueOf(x.ControlStructure))
	}
}

// markFields descends into the wrappers (bodies) of any control structure:
// if/elif/else, for/else, with, filter, macro, call, block...
func markFields(v reflect.Value) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	wrapperT := reflect.TypeFor[*nodes.Wrapper]()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if !f.CanInterface() {
			continue
		}
		switch {
		case f.Type() == wrapperT && !f.IsNil():
			markNode(f.Interface().(*nodes.Wrapper))
		case f.Kind() == reflect.Slice && f.Type().Elem() == wrapperT:
			for j := 0; j < f.Len(); j++ {
				if w := f.Index(j).Interface().(*nodes.Wrapper); w != nil {
					markNode(w)
				}
			}
		}
	}
}

func undefinedArgs(e nodes.Expression) []nodes.Expression {
	switch x := e.(type) {
	case *nodes.Name:
		return []nodes.Expression{&nodes.String{Location: x.Name, Val: x.Name.Val}}
	case *nodes.GetAttribute:
		parent, ok := x.Node.(nodes.Expression)
		if !ok {
			return nil
		}
		name := x.Attribute
		if name == "" {
			name = strconv.Itoa(x.Index)
		}
		return []nodes.Expression{&nodes.String{Location: x.Location, Val: name}, parent}
	case *nodes.GetItem:
		parent, ok := x.Node.(nodes.Expression)
		s, isStr := x.Arg.(*nodes.String)
		if !ok || !isStr {
			return nil
		}
		return []nodes.Expression{&nodes.String{Location: x.Location, Val: s.Val}, parent}
	}
	return nil
}

// parseError keeps gonja's message and line, never the template's text
// (NewTemplate's error quotes the whole source).
func parseError(err error, src []byte) error {
	var se *gonjaparser.SyntaxError
	if errors.As(err, &se) {
		if strings.Contains(se.Message, "unclosed comment") {
			// The lexer gives no position: the comment is the first {# not closed.
			return &templateError{line: unclosedComment(src), msg: "comment {# is not closed (a shell ${#var} needs {% raw %} ... {% endraw %})"}
		}
		return &templateError{line: se.Line, msg: clip(se.Message)}
	}
	if strings.Contains(err.Error(), errNoInclude.Error()) { // gonja flattens this chain
		return &templateError{line: lastLine(err.Error()), msg: errNoInclude.Error()}
	}
	return &templateError{msg: "cannot parse"}
}

// runtimeError names the innermost line gonja's wrapped messages give.
func runtimeError(err error) error {
	for _, sentinel := range []error{errNoInclude, errTooLarge, errTooLong, errTooMany} {
		if errors.Is(err, sentinel) || strings.Contains(err.Error(), sentinel.Error()) {
			return &templateError{line: lastLine(err.Error()), msg: sentinel.Error()}
		}
	}
	msg := strings.TrimPrefix(err.Error(), "unable to execute template: ")
	// The innermost cause is the most useful part of gonja's chain.
	parts := strings.Split(msg, ": ")
	return &templateError{line: lastLine(msg), msg: clip(parts[len(parts)-1])}
}

func unclosedComment(src []byte) int {
	s := string(src)
	for off := 0; ; {
		i := strings.Index(s[off:], "{#")
		if i < 0 {
			return 0
		}
		i += off
		j := strings.Index(s[i+2:], "#}")
		if j < 0 {
			return 1 + strings.Count(s[:i], "\n")
		}
		off = i + 2 + j + 2
	}
}

func lastLine(msg string) int {
	m := lineRe().FindAllStringSubmatch(msg, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// refusingLoader backs include, import, from and extends: templates read
// instance data only.
type refusingLoader struct{}

func (refusingLoader) Read(string) (io.Reader, error)           { return nil, errNoInclude }
func (refusingLoader) Resolve(string) (string, error)           { return "", errNoInclude }
func (l refusingLoader) Inherit(string) (loaders.Loader, error) { return l, nil }

// capWriter collects output up to max bytes and stops a render past its
// deadline.
type capWriter struct {
	buf []byte
	max int64
	ctx context.Context
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.ctx.Err() != nil {
		return 0, errTooLong
	}
	if int64(len(w.buf)+len(p)) > w.max {
		return 0, errTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}
