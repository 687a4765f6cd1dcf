package userdata

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenPart is what testdata/oracle.py records: the part as cloud-init's own
// processor hands it to a handler.
type goldenPart struct {
	Filename    string  `json:"filename"`
	ContentType string  `json:"content_type"`
	LaunchIndex *string `json:"launch_index"`
	Body        []byte  `json:"body"`
}

// deviations are where we knowingly differ from cloud-init 22.4, each with
// why; the golden test applies them to cloud-init's output before comparing.
var deviations = map[string]func([]goldenPart) []goldenPart{
	// Empty user data is no part at all, not one empty unhandled part.
	"empty.txt": func([]goldenPart) []goldenPart { return nil },
	// cloud-init does not see a header behind a byte order mark and ignores
	// the whole user data; we strip the BOM.
	"bom-config.yaml": func(g []goldenPart) []goldenPart {
		g[0].ContentType, g[0].Body = TypeCloudConfig, bytes.TrimPrefix(g[0].Body, []byte(bom))
		return g
	},
	"bom-script.sh": func(g []goldenPart) []goldenPart {
		g[0].ContentType, g[0].Body = TypeScript, bytes.TrimPrefix(g[0].Body, []byte(bom))
		return g
	},
	// cloud-init would write these scripts as is and fail to execute them.
	"crlf-script.sh": func(g []goldenPart) []goldenPart {
		g[0].Body = bytes.ReplaceAll(g[0].Body, []byte("\r\n"), []byte("\n"))
		return g
	},
	"indented-script.sh": func(g []goldenPart) []goldenPart {
		g[0].Body = bytes.TrimLeft(g[0].Body, " \n")
		return g
	},
	// cloud-init's handlers walk the message/rfc822 wrapper's content again,
	// so the wrapped script would run twice; we list it once.
	"rfc822.txt": func(g []goldenPart) []goldenPart { return append(g[:2:2], g[3]) },
}

func TestGoldenAgainstCloudInit(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(files) < 20 {
		t.Fatalf("golden files: %v (%d found); run testdata/generate.sh", err, len(files))
	}
	for _, gf := range files {
		name := strings.TrimSuffix(filepath.Base(gf), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata/inputs", name))
			if err != nil {
				t.Fatal(err)
			}
			js, err := os.ReadFile(gf)
			if err != nil {
				t.Fatal(err)
			}
			var want []goldenPart
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			if fix, ok := deviations[name]; ok {
				want = fix(want)
			}
			// An empty part nothing handles is dropped (cloud-init only logs
			// it at debug level); it still takes its part number.
			kept := want[:0]
			for _, w := range want {
				if len(w.Body) > 0 || KindOf(w.ContentType) != KindUnknown {
					kept = append(kept, w)
				}
			}
			want = kept

			res, err := Parse(raw, Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []goldenPart
			for _, p := range res.Parts {
				g := goldenPart{Filename: p.Filename, ContentType: p.ContentType, Body: p.Body}
				if p.LaunchIndex != nil {
					s := strconv.Itoa(*p.LaunchIndex)
					g.LaunchIndex = &s
				}
				got = append(got, g)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d parts, cloud-init %d:\ngot  %s\nwant %s", len(got), len(want), dump(got), dump(want))
			}
			for i := range want {
				if !sameGolden(got[i], want[i]) {
					t.Errorf("part %d:\ngot  %s\nwant %s", i, dump(got[i:i+1]), dump(want[i:i+1]))
				}
			}
		})
	}
}

func sameGolden(a, b goldenPart) bool {
	li := func(p *string) string {
		if p == nil {
			return "<none>"
		}
		return *p
	}
	return a.Filename == b.Filename && a.ContentType == b.ContentType && bytes.Equal(a.Body, b.Body) && li(a.LaunchIndex) == li(b.LaunchIndex)
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
