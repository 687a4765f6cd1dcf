package config

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

func aliases(name string, n int) string {
	return strings.TrimSuffix(strings.Repeat("*"+name+", ", n), ", ")
}

// cubicBomb is n^3 values to check in about 8n bytes: a list of n aliases
// to a mapping of n aliases to a list of n values (the shape of
// cloud-config's groups: a list of {group: [members]}).
func cubicBomb(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("g%d: *l", i)
	}
	return "x-l: &l [" + strings.TrimSuffix(strings.Repeat("m, ", n), ", ") + "]\n" +
		"x-m: &m {" + strings.Join(keys, ", ") + "}\n" +
		"groups: [" + aliases("m", n) + "]\n"
}

// billionLaughs is the classic: nine levels of nine aliases, 9^9 strings.
func billionLaughs(key string) string {
	var b strings.Builder
	b.WriteString("x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for c := 'b'; c <= 'i'; c++ {
		fmt.Fprintf(&b, "x-%c: &%c [%s]\n", c, c, aliases(string(c-1), 9))
	}
	b.WriteString(key + ": *i\n")
	return b.String()
}

// measure runs f and returns how long it took and what it allocated.
func measure(f func()) (time.Duration, uint64) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return took, after.TotalAlloc - before.TotalAlloc
}

// TestValidateAliasBomb: validation follows aliases, so an alias bomb must
// be refused with one located error, quickly and in bounded memory, while
// ordinary use of anchors is still validated.
func TestValidateAliasBomb(t *testing.T) {
	groups := OneOf(String(), ListOf(OneOf(String(), MapOf(OneOf(String(), ListOf(String()))))))
	nested := String()
	for i := 0; i < 9; i++ {
		nested = ListOf(nested)
	}
	usersWithKeys := ListOf(Object(Field{Name: "name", Type: String()}, Field{Name: "ssh_authorized_keys", Type: ListOf(String())}))
	var shared strings.Builder
	shared.WriteString("x-keys: &keys [" + strings.TrimSuffix(strings.Repeat("'ssh-ed25519 AAAA k', ", 20), ", ") + "]\nusers:\n")
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&shared, "  - {name: u%d, ssh_authorized_keys: *keys}\n", i)
	}
	tests := []struct {
		name    string
		doc     string
		key     string
		schema  *Type
		wantErr string // "" wants no error at all
	}{
		{"cubic: 400 x 400 x 400", cubicBomb(400), "groups", groups, "bomb.yaml:3:9: error: groups: YAML aliases expand"},
		{"billion laughs, 9 levels", billionLaughs("runcmd"), "runcmd", nested, "bomb.yaml:10:9: error: runcmd: YAML aliases expand"},
		{"an anchor shared by 30 users", shared.String(), "users", usersWithKeys, ""},
		{"no aliases, 100k values", "runcmd: [" + strings.TrimSuffix(strings.Repeat("x, ", 100000), ", ") + "]\n", "runcmd", ListOf(String()), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDoc("bomb.yaml", []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			var value = d.Root.Content[len(d.Root.Content)-1]
			var diags []Diagnostic
			took, alloc := measure(func() { diags = Validate(d.Source, tt.key, value, tt.schema) })
			t.Logf("%d bytes: %v, %d KiB allocated, %d diagnostics", len(tt.doc), took.Round(time.Millisecond), alloc>>10, len(diags))
			if took > 3*time.Second || alloc > 64<<20 {
				t.Errorf("validation took %v and %d MiB", took, alloc>>20)
			}
			var got []string
			for _, d := range diags {
				got = append(got, d.String())
			}
			if tt.wantErr == "" {
				if len(got) > 0 {
					t.Errorf("diagnostics %q, want none", got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.wantErr) || !strings.Contains(got[0], "alias bomb") {
				t.Errorf("diagnostics %q, want one starting %q", got, tt.wantErr)
			}
		})
	}
}

// TestDecodeAliasBomb: a module decoding a key (CloudConfig.Decode) gets
// yaml.v3's refusal, naming the document, line and key, not an expansion.
func TestDecodeAliasBomb(t *testing.T) {
	d, err := ParseDoc(`user data part 1 "bomb.yaml"`, []byte(billionLaughs("runcmd")))
	if err != nil {
		t.Fatal(err)
	}
	c := Merge(d)
	var v any
	took, alloc := measure(func() { _, err = c.Decode("runcmd", &v) })
	t.Logf("decode: %v, %d MiB allocated: %v", took.Round(time.Millisecond), alloc>>20, err)
	if err == nil || !strings.Contains(err.Error(), `user data part 1 "bomb.yaml":10: runcmd: document contains excessive aliasing`) {
		t.Fatalf("error %v, want the part, line and key named", err)
	}
	if took > 3*time.Second || alloc > 256<<20 {
		t.Errorf("refusing took %v and %d MiB", took, alloc>>20)
	}
}
