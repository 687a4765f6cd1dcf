package fetch

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseChecksumFile(t *testing.T) {
	a := strings.Repeat("a", 64)
	b := strings.Repeat("b", 64)
	long := strings.Repeat("c", 128)
	tests := []struct {
		name     string
		file     string
		algo     string
		base     string
		wantAlgo string
		wantSum  string
		wantErr  string
	}{
		{name: "bare", file: a, base: "x", wantAlgo: "sha256", wantSum: a},
		{name: "one line naming another file", file: a + "  app-1.2.3.rpm\n", base: "app-latest.rpm", wantAlgo: "sha256", wantSum: a},
		{name: "name with spaces", file: b + "  my file (1).tar\n" + a + "  other\n", base: "my file (1).tar", wantAlgo: "sha256", wantSum: b},
		{name: "path in the name", file: a + "  ./dist/app.tar\n" + b + "  ./dist/lib.tar\n", base: "lib.tar", wantAlgo: "sha256", wantSum: b},
		{name: "comments and blank lines", file: "# SHA256SUMS\n\n" + strings.ToUpper(a) + " *app\n", base: "app", wantAlgo: "sha256", wantSum: a},
		{name: "BSD, two algorithms", file: "SHA512 (app) = " + long + "\nSHA256 (app) = " + a + "\n", algo: "sha256", base: "app", wantAlgo: "sha256", wantSum: a},
		{name: "BSD, inferred from the tag", file: "SHA512 (app) = " + long + "\n", base: "app", wantAlgo: "sha512", wantSum: long},
		{name: "same digest twice", file: a + "  app\n" + a + "  ./app\n" + b + "  other\n", base: "app", wantAlgo: "sha256", wantSum: a},
		{name: "conflicting digests", file: a + "  app\n" + b + "  ./app\n", base: "app", wantErr: `two different digests for "app"`},
		{name: "not hex", file: strings.Repeat("z", 64) + "  app\n", base: "app", wantErr: "line 1: sha256"},
		{name: "malformed BSD", file: "SHA256 (app) " + a + "\n", base: "app", wantErr: "line 1: not a checksum line"},
		{name: "empty", file: "", base: "app", wantErr: "no sha256 or sha512 digest"},
		{name: "odd length skipped", file: "abc  app\n", base: "app", wantErr: "no sha256 or sha512 digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseChecksumFile([]byte(tt.file), tt.algo, tt.base)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.algo != tt.wantAlgo || got.sum != tt.wantSum {
				t.Errorf("got %+v %v, want %s:%s", got, err, tt.wantAlgo, tt.wantSum)
			}
		})
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in           string
		start, total int64
		bad          bool
	}{
		{in: "bytes 100-199/200", start: 100, total: 200},
		{in: "bytes 0-0/*", start: 0, total: -1},
		{in: "bytes */200", bad: true},
		{in: "items 1-2/3", bad: true},
		{in: "bytes -5-10/20", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		start, total, err := parseContentRange(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (start != tt.start || total != tt.total)) {
			t.Errorf("%q: %d %d %v", tt.in, start, total, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{"-3", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.in, got, tt.want)
		}
	}
}
