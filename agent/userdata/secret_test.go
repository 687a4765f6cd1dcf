package userdata

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// secret stands for the passwords and keys people put in user data. It must
// never reach an error, a warning or Describe: those are logged.
const secret = "AKIAIOSFODNN7EXAMPLE-hunter2"

func TestNoSecretInMessages(t *testing.T) {
	vars := VarsMap{"v1": map[string]any{"region": "us-east-1"}}
	inputs := map[string][]byte{
		"every kind of part": mimeMsg(
			"Content-Type: text/x-shellscript\n\n#!/bin/sh\nexport TOKEN="+secret,
			"Content-Type: text/x-shellscript\n\nexport TOKEN="+secret, // no #!
			"Content-Type: text/plain\n\n"+secret,
			"Content-Type: text/cloud-config\n\n#cloud-config\npassword: "+secret,
			"Content-Type: application/x-secret-store\n\n"+secret,
			"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==",
			"Content-Type: text/part-handler\n\n#part-handler\n# "+secret,
			"Content-Type: text/cloud-boothook\n\n#cloud-boothook\n"+secret,
			"Launch-Index: "+secret+"\nContent-Type: text/x-shellscript\n\n#!/bin/sh",
			"Content-Type: text/jinja2\n\n## template: jinja\n#cloud-boothook\n"+secret,
		),
		"no header":             []byte(secret + "\n"),
		"binary with secret":    append([]byte{0, 1, 2, 3, 0xff}, secret...),
		"archive entries":       []byte("#cloud-config-archive\n- {content: [" + secret + "]}\n- 42\n- type: text/x-include-url\n  content: https://h/" + secret + "\n"),
		"archive bad YAML":      []byte("#cloud-config-archive\n- *" + secret + "\n"),
		"archive bad YAML 2":    []byte("#cloud-config-archive\n- \"" + secret + "\n  : ]\n"),
		"jinja statement":       []byte("## template: jinja\n#!/bin/sh\n{% set x = '" + secret + "' %}\n"),
		"jinja literal":         []byte("## template: jinja\n#!/bin/sh\n{{ '" + secret + "' }}\n"),
		"jinja filter":          []byte("## template: jinja\n#!/bin/sh\n{{ v1.region | " + secret + " }}\n"),
		"jinja unclosed":        []byte("## template: jinja\n#!/bin/sh\n{{ " + secret + "\n"),
		"jinja no header":       mimeMsg("Content-Type: text/jinja2\n\n" + secret),
		"gzip part corrupt":     mimeMsg("Content-Type: application/x-gzip\n\n\x1f\x8b" + secret),
		"include bad URL":       []byte("#include\nftp://h/" + secret + "\n"),
		"include path":          []byte("#include\n/" + secret + "\n"),
		"include not a URL":     []byte("#include\n" + secret + "\n"),
		"include odd scheme":    []byte("#include\n" + secret + ":x\n"),
		"include userinfo":      []byte("#include\nhttps://me:" + secret + "@h/ud\n"),
		"include http":          []byte("#include\nhttp://h/?" + secret + "\n"),
		"include fetch fails":   []byte("#include\nhttps://h/ud?sig=" + secret + "\n"),
		"include depth":         []byte("#include\nhttps://h/loop?sig=" + secret + "\n"),
		"included bad template": []byte("#include\nhttps://h/tmpl?sig=" + secret + "\n"),
	}
	fetch := func(_ context.Context, url string) ([]byte, error) {
		switch {
		case strings.Contains(url, "/loop"):
			return []byte("#include\n" + url + "\n"), nil
		case strings.Contains(url, "/tmpl"):
			return []byte("## template: jinja\n#!/bin/sh\n{{ '" + secret + "' }}\n"), nil
		}
		return nil, errors.New(`Get "` + url + `": dial tcp: connection refused`)
	}
	for name, raw := range inputs {
		t.Run(name, func(t *testing.T) {
			var texts []string
			check := func(res *Result, err error) {
				if err != nil {
					texts = append(texts, err.Error())
				}
				if res == nil {
					return
				}
				for _, w := range res.Warnings {
					texts = append(texts, w.String())
				}
				for _, p := range res.Parts {
					texts = append(texts, Describe(p))
				}
			}
			res, err := Parse(raw, Options{})
			check(res, err)
			if res != nil {
				check(Resolve(context.Background(), res, fetch, Options{MaxIncludeDepth: 2}))
				check(res.Render(vars))
			}
			check(Parse(raw, Options{Vars: vars}))
			if len(texts) == 0 {
				t.Fatal("nothing to check: the input produced no message at all")
			}
			for _, s := range texts {
				if strings.Contains(s, secret) || strings.Contains(s, "hunter2") {
					t.Errorf("leaks the secret: %s", s)
				}
			}
		})
	}
}
