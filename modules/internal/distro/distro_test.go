package distro

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name       string
		data       string
		want       Distro
		debian, rh bool
	}{
		{"amazon linux 2023", "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n",
			Distro{ID: "amzn", IDLike: []string{"fedora"}, VersionID: "2023"}, false, true},
		{"amazon linux 2", "ID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\n",
			Distro{ID: "amzn", IDLike: []string{"centos", "rhel", "fedora"}, VersionID: "2"}, false, true},
		{"debian", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n",
			Distro{ID: "debian", VersionID: "12"}, true, false},
		{"ubuntu", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n",
			Distro{ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "22.04"}, true, false},
		{"rocky", "ID='rocky'\nID_LIKE=\"rhel centos fedora\"\n# comment\n",
			Distro{ID: "rocky", IDLike: []string{"rhel", "centos", "fedora"}}, false, true},
		{"escapes", `ID="we\"ird\\"` + "\n", Distro{ID: `we"ird\`}, false, false},
		{"empty", "", Distro{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse([]byte(tt.data))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %#v, want %#v", got, tt.want)
			}
			if got.IsDebianLike() != tt.debian || got.IsRedHatLike() != tt.rh {
				t.Errorf("debian-like %v red-hat-like %v, want %v %v", got.IsDebianLike(), got.IsRedHatLike(), tt.debian, tt.rh)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	root, err := sys.NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Detect(root); err != nil || d.ID != "" || d.String() != "unknown" {
		t.Errorf("no os-release: %v, %v", d, err)
	}
	// The usual layout: /etc/os-release a relative link into /usr/lib.
	if err := os.MkdirAll(filepath.Join(dir, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/lib/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, err := Detect(root); err != nil || d.String() != "debian 12" {
		t.Errorf("/usr/lib/os-release: %v, %v", d, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if d, err := Detect(root); err != nil || !d.IsDebianLike() {
		t.Errorf("/etc/os-release link: %v, %v", d, err)
	}
}
