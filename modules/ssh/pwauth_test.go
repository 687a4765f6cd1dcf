package ssh

import (
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/modules/modtest"
)

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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := modtest.Env(t)
			if err := e.Root.WriteFile(sshdConfig, []byte(tt.main), 0o644, nil); err != nil {
				t.Fatal(err)
			}
			for name, c := range tt.dropIns {
				if err := e.Root.WriteFile("/etc/ssh/sshd_config.d/"+name, []byte(c), 0o644, nil); err != nil {
					t.Fatal(err)
				}
			}
			err := setPasswordAuth(e.Root, tt.value, zap.NewNop())
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
			if tt.wantDropIn && !strings.Contains(string(drop), "\nPasswordAuthentication "+tt.value+"\n") {
				t.Errorf("drop-in: %q", drop)
			}
		})
	}
}

func TestSetPasswordAuthNoSSHD(t *testing.T) {
	e, _ := modtest.Env(t)
	if err := setPasswordAuth(e.Root, "no", zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Root.Exists(sshdConfig); ok {
		t.Error("created sshd_config")
	}
}
