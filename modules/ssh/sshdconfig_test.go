package ssh

import (
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules/modtest"
)

func setPwauth(root *sys.Root, v string) error {
	_, err := setSSHDOptions(root, []sshdOption{{Keyword: "PasswordAuthentication", Value: v}}, zap.NewNop())
	return err
}

func TestSetPasswordAuth(t *testing.T) {
	tests := []struct {
		name    string
		main    string
		dropIns map[string]string
		value   string
		// wantMain is sshd_config afterwards ("" = unchanged).
		wantMain   string
		wantDropIn bool
		wantErr    string
	}{
		{name: "appended", main: "Port 22\n", value: "no",
			wantMain: "Port 22\nPasswordAuthentication no\n"},
		{name: "replaced, comments kept", main: "#PasswordAuthentication yes\nPasswordAuthentication yes\n", value: "no",
			wantMain: "#PasswordAuthentication yes\nPasswordAuthentication no\n"},
		{name: "equals syntax", main: "passwordauthentication=no\n", value: "yes",
			wantMain: "PasswordAuthentication yes\n"},
		{name: "before Match", main: "Port 22\nMatch User bob\n  PasswordAuthentication yes\n", value: "no",
			wantMain: "Port 22\nPasswordAuthentication no\n\nMatch User bob\n  PasswordAuthentication yes\n"},
		{name: "drop-in when included", main: "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n", value: "yes",
			wantDropIn: true},
		{name: "relative include", main: "Include sshd_config.d/*.conf\n", value: "yes", wantDropIn: true},
		{name: "set before the include", main: "PasswordAuthentication no\nInclude /etc/ssh/sshd_config.d/*.conf\n", value: "yes",
			wantMain: "PasswordAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf\n"},
		{name: "earlier drop-in wins", main: "Include /etc/ssh/sshd_config.d/*.conf\n", value: "yes",
			dropIns:    map[string]string{"10-site.conf": "PasswordAuthentication no\n", "60-later.conf": "PasswordAuthentication no\n"},
			wantDropIn: true, wantErr: "10-site.conf is read first"},
		{name: "no sshd_config, vendor config in /usr/etc", value: "no", wantDropIn: true,
			dropIns: map[string]string{"README": "x\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			if tt.main != "" {
				if err := e.Root.WriteFile(sshdConfig, []byte(tt.main), 0o644, nil); err != nil {
					t.Fatal(err)
				}
			}
			for name, c := range tt.dropIns {
				if err := e.Root.WriteFile("/etc/ssh/sshd_config.d/"+name, []byte(c), 0o644, nil); err != nil {
					t.Fatal(err)
				}
			}
			err := setPwauth(e.Root, tt.value)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			main, _ := e.Root.ReadFile(sshdConfig)
			want := tt.wantMain
			if want == "" {
				want = tt.main
			}
			if string(main) != want {
				t.Errorf("sshd_config:\n%s\nwant:\n%s", main, want)
			}
			drop, derr := e.Root.ReadFile(DropIn)
			if tt.wantDropIn != (derr == nil) {
				t.Fatalf("drop-in present = %v, want %v", derr == nil, tt.wantDropIn)
			}
			if tt.wantDropIn && !strings.Contains("\n"+string(drop), "\nPasswordAuthentication "+tt.value+"\n") {
				t.Errorf("drop-in: %q", drop)
			}
		})
	}
}

func TestSetPasswordAuthNoSSHD(t *testing.T) {
	e, _ := modtest.Env(t)
	if err := setPwauth(e.Root, "no"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Root.Exists(sshdConfig); ok {
		t.Error("created sshd_config")
	}
}

// TestDropInMigration: an earlier release's 50-ec2init.conf is folded into
// cloud-init's 50-cloud-init.conf, so sshd reads one file, not two.
func TestDropInMigration(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, sshdConfig, "Include /etc/ssh/sshd_config.d/*.conf\n")
	modtest.Put(t, e, OldDropIn, "# Written by ec2init from the cloud-config's ssh_pwauth.\nPasswordAuthentication yes\n")
	modtest.Put(t, e, DropIn, "HostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n")
	if err := setPwauth(e.Root, "no"); err != nil {
		t.Fatal(err)
	}
	if got := modtest.Get(t, e, OldDropIn); got != "<absent>" {
		t.Errorf("old drop-in left: %q", got)
	}
	want := "PasswordAuthentication no\nHostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\n"
	if got := modtest.Get(t, e, DropIn); got != want {
		t.Errorf("drop-in %q, want %q", got, want)
	}
}

// TestHostCertificateOnce: HostCertificate lines add up, each once, and
// go into the drop-in even when sshd_config sets one itself.
func TestHostCertificateOnce(t *testing.T) {
	e, _ := modtest.Env(t)
	modtest.Put(t, e, sshdConfig, "Include /etc/ssh/sshd_config.d/*.conf\nHostCertificate /etc/ssh/other-cert.pub\n")
	opts := []sshdOption{
		{Keyword: "HostCertificate", Value: "/etc/ssh/ssh_host_rsa_key-cert.pub", Multi: true},
		{Keyword: "HostCertificate", Value: "/etc/ssh/ssh_host_ed25519_key-cert.pub", Multi: true},
	}
	for range 2 {
		if _, err := setSSHDOptions(e.Root, opts, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
	}
	want := "HostCertificate /etc/ssh/ssh_host_rsa_key-cert.pub\nHostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n"
	if got := modtest.Get(t, e, DropIn); got != want {
		t.Errorf("drop-in %q, want %q", got, want)
	}
	if fi, err := e.Root.Stat(DropIn); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("drop-in mode: %v %v", fi, err)
	}
}
