package agent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
)

// ConfigPolicy is how LoadCloudConfig treats the problems it finds.
type ConfigPolicy struct {
	// Registry holds the schemas documents are validated against.
	Registry *modules.Registry
	// Strict makes any error fail the load (bake: nothing is baked from a
	// cloud-config with a mistake in it). Otherwise (the boot) a schema
	// error is a warning, as cloud-init's schema validation is at boot:
	// the key still reaches its module, which fails, named, only on what
	// it cannot interpret (a runcmd item that is a date), while what it
	// can read runs (a number where a string was expected). A document
	// that does not parse, and a key refused outright (an alias bomb, left
	// out), are still errors.
	Strict bool
}

// LoadedConfig is what LoadCloudConfig read.
type LoadedConfig struct {
	// Config is the merge of Docs, later documents over earlier ones.
	Config *config.CloudConfig
	// Docs are the documents that parsed, in source order; without
	// Strict, keys with errors are left out of them.
	Docs []config.Doc
	// Checked is every source with what validation found in it, in order.
	Checked []CheckedDoc
}

// LoadCloudConfig parses, validates and merges cloud-config documents, one
// per source, as the boot, `ec2init bake` and `ec2init schema` all do, so
// they report the same problems. With policy.Strict any error fails it,
// with the error diagnostics listed in the error (Config is then nil, and
// Checked still says what was found); warnings never do.
func LoadCloudConfig(srcs []ConfigSource, policy ConfigPolicy) (*LoadedConfig, error) {
	out := &LoadedConfig{}
	var errs []string
	for _, src := range srcs {
		c, doc, ok := checkDoc(src, policy.Registry)
		refused := map[string]bool{}
		for i, d := range c.Diagnostics {
			if d.Severity != config.SeverityError {
				continue
			}
			errs = append(errs, d.String())
			switch {
			case d.Refused:
				refused[topKey(d.Path)] = true
			case ok && !policy.Strict:
				c.Diagnostics[i].Severity = config.SeverityWarning
			}
		}
		out.Checked = append(out.Checked, c)
		if ok {
			out.Docs = append(out.Docs, withoutKeys(doc, refused))
		}
	}
	if policy.Strict && len(errs) > 0 {
		return out, fmt.Errorf("cloud-config: %s", strings.Join(errs, "\n  "))
	}
	out.Config = config.Merge(out.Docs...)
	return out, nil
}

// checkDoc parses and validates one document. ok is false when it does not
// parse; the parse error is then its one diagnostic, and c.Err.
func checkDoc(src ConfigSource, reg *modules.Registry) (c CheckedDoc, doc config.Doc, ok bool) {
	c = CheckedDoc{Source: src.Name, Body: src.Body}
	doc, err := config.ParseDoc(src.Name, src.Body)
	doc.MergeType = src.MergeType
	if err != nil {
		c.Err = err
		var pe *config.ParseError
		if errors.As(err, &pe) {
			c.Diagnostics = []config.Diagnostic{pe.Diagnostic()}
		} else {
			c.Diagnostics = []config.Diagnostic{{Source: src.Name, Severity: config.SeverityError, Message: err.Error()}}
		}
		return c, config.Doc{}, false
	}
	c.Diagnostics = reg.ValidateDoc(doc)
	return c, doc, true
}

// Problems are c's findings as the boot records them in its status: a
// document that does not parse by its parse error, the others by each
// diagnostic, all under "cloud-config: ".
func (c CheckedDoc) Problems() (errs, warnings []string) {
	if c.Err != nil {
		return []string{"cloud-config: " + c.Err.Error()}, nil
	}
	for _, d := range c.Diagnostics {
		if d.Severity == config.SeverityError {
			errs = append(errs, "cloud-config: "+d.String())
		} else {
			warnings = append(warnings, "cloud-config: "+d.String())
		}
	}
	return errs, warnings
}
