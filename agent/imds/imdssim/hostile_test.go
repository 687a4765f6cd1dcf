package imdssim

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// aliasBomb is a data file whose meta-data holds levels of mappings, each
// of width aliases to the level below: width^levels entries from a few
// hundred bytes.
func aliasBomb(levels, width int) string {
	var b strings.Builder
	b.WriteString("dynamic:\n  x0: &x0 {")
	for k := 0; k < width; k++ {
		fmt.Fprintf(&b, "v%d: lol, ", k)
	}
	b.WriteString("}\n")
	for l := 1; l < levels; l++ {
		fmt.Fprintf(&b, "  x%d: &x%d {", l, l)
		for k := 0; k < width; k++ {
			fmt.Fprintf(&b, "k%d: *x%d, ", k, l-1)
		}
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, "meta-data:\n  instance-id: i-0bomb\n  bomb: *x%d\n", levels-1)
	return b.String()
}

// TestParseAliasBomb: a data file that expands to 10^9 entries is refused
// quickly, in bounded memory, with an error naming the file and the path;
// one that expands moderately still loads.
func TestParseAliasBomb(t *testing.T) {
	tests := []struct {
		name          string
		levels, width int
		wantErr       string
	}{
		{"billion laughs", 9, 10, "imds data file bomb.yaml: line "},
		{"wide and shallow", 2, 20000, "more than 100000 entries"},
		{"moderate reuse loads", 3, 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := aliasBomb(tt.levels, tt.width)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			tree, err := Parse("bomb.yaml", []byte(data))
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %v, %d MiB allocated, err %v", len(data), took.Round(time.Millisecond), alloc>>20, err)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if v, _, ok := tree.Get("meta-data/bomb/k9/k9/v9"); !ok || v != "lol" {
					t.Errorf("expanded entry: %q %v", v, ok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "entries") {
				t.Fatalf("error %v, want %q and the entry limit", err, tt.wantErr)
			}
			if took > 5*time.Second || alloc > 256<<20 {
				t.Errorf("refusing took %v and %d MiB", took, alloc>>20)
			}
		})
	}
}
