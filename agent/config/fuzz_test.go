package config

import "testing"

// FuzzCloudConfig: any document parses or fails with a located error, and
// validating it against a schema of every kind never panics.
func FuzzCloudConfig(f *testing.F) {
	for _, s := range []string{"runcmd: [a, [b, c]]\n", "users:\n  - name: x\n    groups: [a]\n", "a: &x [*x]\n", "merge_how: list(append)\nx: [1]\n", "- 1\n", "{"} {
		f.Add([]byte(s))
	}
	schema := Object(
		Field{Name: "runcmd", Type: ListOf(OneOf(String(), ListOf(String())))},
		Field{Name: "users", Type: ListOf(Object(Field{Name: "name", Type: String(), Required: true}, Field{Name: "groups", Type: OneOf(String(), ListOf(String()))}))},
		Field{Name: "flag", Type: Bool()}, Field{Name: "n", Type: Int()}, Field{Name: "m", Type: MapOf(Any())},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDoc("fuzz", data)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if d.Root == nil {
			return
		}
		for _, diag := range Validate("fuzz", "", d.Root, schema) {
			if diag.Source != "fuzz" {
				t.Fatalf("diagnostic without its source: %+v", diag)
			}
		}
		Merge(d, d)
	})
}
