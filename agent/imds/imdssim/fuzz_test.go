package imdssim

import "testing"

// FuzzParse: any data file loads or fails naming the file, never panics;
// a loaded tree answers every lookup.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	for _, s := range []string{"meta-data: {a: b}\n", "meta-data:\n  public-keys:\n    0=k: {openssh-key: x}\n", "meta-data: [\n", "user-data-base64: '%'\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tree, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, p := range []string{"meta-data", "meta-data/", "meta-data/public-keys/0/", "dynamic/x", "meta-data/a/b/c"} {
			tree.Get(p)
		}
	})
}
