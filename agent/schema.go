package agent

import (
	"bytes"
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
	// Err is the document's parse error, when it has one (then also its
	// one diagnostic).
	Err error
}

// ValidateInput validates a cloud-config file, or whole user data (every
// cloud-config part of it), against the modules' schemas — what `ec2init
// schema` and the boot both use, so they report the same messages.
func ValidateInput(name string, data []byte, reg *modules.Registry) ([]CheckedDoc, error) {
	srcs, err := InputSources(name, data)
	if err != nil {
		return nil, err
	}
	var out []CheckedDoc
	for _, src := range srcs {
		c, _, _ := checkDoc(src, reg)
		out = append(out, c)
	}
	return out, nil
}

// InputSources splits an input into its cloud-config documents: every
// cloud-config part of user data, or a bare YAML file as one document.
func InputSources(name string, data []byte) ([]ConfigSource, error) {
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
	out := make([]ConfigSource, 0, len(parts))
	for _, p := range parts {
		source := name
		if p.Index >= 0 && len(parts) > 1 || p.Filename != "" && p.Index > 0 {
			source = fmt.Sprintf("%s part %d %q", name, p.Index, p.Filename)
		}
		out = append(out, ConfigSource{Name: source, Body: p.Body})
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
