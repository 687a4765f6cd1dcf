package fetch

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/internal/testkit"
)

func TestCompareSemver(t *testing.T) {
	// Each is lower than the next.
	order := []string{"app-0.9.tar.gz", "app-1.2.3-alpha.tar.gz", "app-1.2.3-alpha.1.tar.gz", "app-1.2.3-beta.tar.gz",
		"app-1.2.3-rc.2", "app-1.2.3-rc.10", "app-1.2.3.tar.gz", "app-1.10.0.tar.gz", "app_2.0.0_amd64.deb"}
	for i := 0; i+1 < len(order); i++ {
		a, ok1 := parseSemver(order[i])
		b, ok2 := parseSemver(order[i+1])
		if !ok1 || !ok2 {
			t.Fatalf("no version in %q or %q", order[i], order[i+1])
		}
		if compareSemver(a, b) >= 0 || compareSemver(b, a) <= 0 {
			t.Errorf("%s (%s) should be below %s (%s)", order[i], a.text, order[i+1], b.text)
		}
	}
	if v, _ := parseSemver("app-1.2.3-rc1.tar.gz"); v.text != "1.2.3-rc1" {
		t.Errorf("version %q", v.text)
	}
	if _, ok := parseSemver("app-latest.tar.gz"); ok {
		t.Error("a version in app-latest.tar.gz")
	}
}

func TestResolveVersionManifest(t *testing.T) {
	o := testkit.NewOrigin(t, nil)
	ca := o.WriteCA(t, filepath.Join(t.TempDir(), "ca.pem"))
	sum := sha256Hex([]byte("x"))
	tests := []struct {
		name    string
		body    string
		want    Resolved
		wantErr string
		wantIs  error
	}{
		{name: "json", body: `{"version": "1.4.2", "url": "app-1.4.2.tgz", "sha256": "` + sum + `"}`,
			want: Resolved{Version: "1.4.2", URL: o.URL + "/rel/app-1.4.2.tgz", SHA256: sum}},
		{name: "json with a signature URL", body: `{"version": "2.0.0", "url": "https://cdn.example.com/app.tgz", "signature_url": "app.tgz.minisig"}`,
			want: Resolved{Version: "2.0.0", URL: "https://cdn.example.com/app.tgz", SignatureURL: o.URL + "/rel/app.tgz.minisig"}},
		{name: "text", body: "v3.1.0\n", want: Resolved{Version: "v3.1.0"}},
		{name: "json without a version", body: `{"url": "a.tgz"}`, wantIs: ErrNoVersion, wantErr: "no version in it"},
		{name: "empty", body: "\n", wantIs: ErrNoVersion},
		{name: "a version that is no word", body: "1.0 ../../x", wantErr: `version "1.0 ../../x"`},
		{name: "bad digest", body: `{"version": "1", "sha256": "abc"}`, wantErr: "want 64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t, ArtifactOptions{CAFile: ca})
			u := o.Put("/rel/"+strings.ReplaceAll(tt.name, " ", "-"), []byte(tt.body))
			got, err := f.ResolveVersion(context.Background(), "app", u, false)
			if tt.wantErr != "" || tt.wantIs != nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("resolved %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestResolveVersionS3 lists a real S3 server (versitygw) with the
// instance role: the highest semantic version under the prefix wins.
func TestResolveVersionS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw")
	}
	gw := startVersitygw(t)
	for _, k := range []string{"app/app-1.2.3.tar.gz", "app/app-1.10.0.tar.gz", "app/app-1.10.0.tar.gz.sha256",
		"app/app-1.11.0-rc1.tar.gz", "app/app-1.9.9.tar.gz", "app/README", "other/app-9.0.0.tar.gz", "two/a-1.0.0.tgz", "two/b-1.0.0.tgz"} {
		gw.put(t, "rel", k, []byte(k))
	}
	_, client := roleIMDS(t, "role")
	f := newTestFetcher(t, ArtifactOptions{CAFile: gw.ca.pemPath, S3Endpoint: gw.endpoint, S3PathStyle: true, IMDS: client})
	got, err := f.ResolveVersion(context.Background(), "app", "s3://rel/app/", false)
	if err != nil {
		t.Fatal(err)
	}
	// 1.11.0-rc1 is a prerelease of 1.11.0, above 1.10.0 by semver order.
	if got.Version != "1.11.0-rc1" || got.URL != "s3://rel/app/app-1.11.0-rc1.tar.gz" {
		t.Errorf("resolved %+v", got)
	}
	if _, err := f.ResolveVersion(context.Background(), "app", "s3://rel/none/", false); !errors.Is(err, ErrNoVersion) {
		t.Errorf("empty prefix: %v, want ErrNoVersion", err)
	}
	if _, err := f.ResolveVersion(context.Background(), "app", "s3://rel/two/", false); err == nil || !strings.Contains(err.Error(), "narrow the prefix") {
		t.Errorf("two objects of one version: %v", err)
	}
}
