package agent

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/userdata"
	"github.com/ec2init/ec2init/modules"
)

// CheckedDoc is one cloud-config document of an input and what validation
// found in it.
type CheckedDoc struct {
	Source      string
	Body        []byte
	Diagnostics []config.Diagnostic
}

// ValidateInput validates a cloud-config file, or whole user data (every
// cloud-config part of it), against the modules' schemas — what `ec2init
// schema` and the boot both use, so they report the same messages.
func ValidateInput(name string, data []byte, reg *modules.Registry) ([]CheckedDoc, error) {
	trimmed := bytes.TrimLeft(data, "\ufeff \t\r\n")
	var parts []userdata.Part
	if looksLikeUserData(trimmed) {
		res, err := userdata.Parse(data, userdata.Options{})
		if err != nil {
			return nil, err
		}
		for _, p := range res.Parts {
			if p.Kind == userdata.KindCloudConfig {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("%s: no cloud-config in this user data", name)
		}
	} else {
		// A bare YAML file: validate it as cloud-config.
		parts = []userdata.Part{{Index: -1, Body: data}}
	}
	var out []CheckedDoc
	for _, p := range parts {
		source := name
		if p.Index >= 0 && len(parts) > 1 || p.Filename != "" && p.Index > 0 {
			source = fmt.Sprintf("%s part %d %q", name, p.Index, p.Filename)
		}
		doc, err := config.ParseDoc(source, p.Body)
		var pe *config.ParseError
		if errors.As(err, &pe) {
			out = append(out, CheckedDoc{Source: source, Body: p.Body, Diagnostics: []config.Diagnostic{pe.Diagnostic()}})
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, CheckedDoc{Source: source, Body: p.Body, Diagnostics: reg.ValidateDoc(doc)})
	}
	return out, nil
}

func looksLikeUserData(b []byte) bool {
	for _, prefix := range []string{"#cloud-config", "#!", "#include", "#cloud-boothook", "#cloud-config-archive", "## template:", "Content-Type:", "MIME-Version:", "\x1f\x8b"} {
		if bytes.HasPrefix(b, []byte(prefix)) {
			return true
		}
	}
	return false
}
