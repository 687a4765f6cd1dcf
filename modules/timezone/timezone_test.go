package timezone

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules/modtest"
)

func TestTimezone(t *testing.T) {
	tests := []struct {
		name         string
		os           string
		cfg          string
		wantErr      string
		wantLink     string // "" when /etc/localtime must stay as it was
		wantTimezone string // /etc/timezone; "" for absent
	}{
		{"debian", "ID=debian\n", "timezone: Europe/Berlin", "", "../usr/share/zoneinfo/Europe/Berlin", "Europe/Berlin\n"},
		{"amazon linux", "ID=amzn\nID_LIKE=fedora\n", "timezone: Asia/Tokyo", "", "../usr/share/zoneinfo/Asia/Tokyo", ""},
		{"alias link in zoneinfo", "ID=debian\n", "timezone: UTC", "", "../usr/share/zoneinfo/UTC", "UTC\n"},
		{"unknown", "ID=debian\n", "timezone: Mars/Olympus", `test.yaml:1: timezone: unknown time zone "Mars/Olympus": no /usr/share/zoneinfo/Mars/Olympus`, "", ""},
		{"escape", "ID=debian\n", "timezone: ../../../etc/passwd", `timezone: "../../../etc/passwd" is not a time zone name`, "", ""},
		{"directory", "ID=debian\n", "timezone: Europe", `"Europe" is not a time zone`, "", ""},
		{"absolute", "ID=debian\n", "timezone: /usr/share/zoneinfo/UTC", "is not a time zone name", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			modtest.Put(t, e, "/etc/os-release", tt.os)
			for _, z := range []string{"Europe/Berlin", "Asia/Tokyo", "Etc/UTC"} {
				modtest.Put(t, e, ZoneinfoDir+"/"+z, "TZif2 "+z)
			}
			if err := os.Symlink("Etc/UTC", filepath.Join(e.Root.Prefix(), "usr/share/zoneinfo/UTC")); err != nil {
				t.Fatal(err)
			}
			modtest.Put(t, e, "/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
			// An image's link to its old zone, replaced in place.
			if err := os.Symlink("/usr/share/zoneinfo/Etc/UTC", filepath.Join(e.Root.Prefix(), "etc/localtime")); err != nil {
				t.Fatal(err)
			}
			err := Timezone{}.Run(context.Background(), e, modtest.Config(t, tt.cfg))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			lt := filepath.Join(e.Root.Prefix(), "etc/localtime")
			got, err := os.Readlink(lt)
			want := tt.wantLink
			if want == "" {
				want = "/usr/share/zoneinfo/Etc/UTC"
			}
			if err != nil || got != want {
				t.Errorf("/etc/localtime -> %q (%v), want %q", got, err, want)
			}
			if tt.wantLink != "" {
				b, err := os.ReadFile(lt)
				if err != nil || !strings.HasPrefix(string(b), "TZif2") {
					t.Errorf("/etc/localtime does not resolve to the zone under the root: %q %v", b, err)
				}
			}
			b, _ := os.ReadFile(filepath.Join(e.Root.Prefix(), "etc/timezone"))
			if string(b) != tt.wantTimezone {
				t.Errorf("/etc/timezone = %q, want %q", b, tt.wantTimezone)
			}
			if leftovers, _ := filepath.Glob(filepath.Join(e.Root.Prefix(), "etc/.localtime*")); len(leftovers) > 0 {
				t.Errorf("temporary links left: %v", leftovers)
			}
		})
	}
}

// TestTimezoneReal sets a real zone from the host's tzdata in a temporary
// root and has the C library read it through the new /etc/localtime.
func TestTimezoneReal(t *testing.T) {
	const zone = "Asia/Tokyo"
	data, err := os.ReadFile("/usr/share/zoneinfo/" + zone)
	if err != nil {
		t.Skip("tzdata is not installed (Debian package tzdata): ", err)
	}
	date, err := exec.LookPath("date")
	if err != nil {
		t.Skip("date(1) not found")
	}
	e, _ := modtest.Env(t)
	modtest.Put(t, e, "/etc/os-release", "ID=debian\n")
	modtest.Put(t, e, ZoneinfoDir+"/"+zone, string(data))
	if err := (Timezone{}).Run(context.Background(), e, modtest.Config(t, "timezone: "+zone)); err != nil {
		t.Fatal(err)
	}
	// TZ=:FILE makes glibc read that file; it follows the relative link.
	cmd := exec.Command(date, "-d", "@0", "+%Z %H")
	cmd.Env = []string{"TZ=:" + filepath.Join(e.Root.Prefix(), "etc/localtime")}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "JST 09" {
		t.Errorf("date in the new zone = %q, want JST 09", got)
	}
}

func TestSchema(t *testing.T) {
	got := modtest.Diagnostics(t, "timezone: [UTC]\n", Timezone{})
	if !strings.Contains(got, "u.yaml:1:11: error: timezone: expected string, got a list") {
		t.Errorf("diagnostics %q", got)
	}
}
