package hostname

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestHostileNames: a hostname with shell metacharacters, from the
// cloud-config or from IMDS, is refused by every hostname module before
// anything is written (hostnamectl and hostname(1) get the name as argv,
// but it never gets that far): the error names the key, the files are
// unchanged and nothing ran.
func TestHostileNames(t *testing.T) {
	marks := t.TempDir()
	m := func(n int) string { return filepath.Join(marks, "pwned-"+strconv.Itoa(n)) }
	tests := []struct {
		name, cfg, local, wantErr string
	}{
		{"hostname ;", "hostname: " + strconv.Quote("web; touch "+m(1)), "", "hostname: "},
		{"hostname $()", "hostname: " + strconv.Quote("$(touch "+m(2)+")"), "", "hostname: "},
		{"fqdn backticks", "fqdn: " + strconv.Quote("`touch "+m(3)+"`.example.com"), "", "fqdn: "},
		{"fqdn newline", "fqdn: " + strconv.Quote("web.example.com\n127.0.0.1 evil"), "", "fqdn: "},
		{"IMDS local-hostname", "{}", "ip-10-0-0-1&&touch " + m(4) + ".ec2.internal", "IMDS local-hostname: "},
	}
	for _, mod := range []modules.Module{SetHostname{}, UpdateHostname{}, UpdateEtcHosts{}} {
		for _, tt := range tests {
			t.Run(mod.Name()+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, debianOS, tt.local)
				writeFile(t, e, HostnameFile, "old\n")
				writeFile(t, e, HostsFile, "127.0.0.1 localhost\n")
				cfg := tt.cfg
				if _, ok := mod.(UpdateEtcHosts); ok {
					cfg = strings.TrimPrefix(cfg+"\nmanage_etc_hosts: true", "{}\n")
				}
				err := mod.Run(context.Background(), e, modtest.Config(t, cfg))
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "not allowed") {
					t.Fatalf("error %v, want the name refused under %q", err, tt.wantErr)
				}
				if got := readFile(t, e, HostnameFile); got != "old\n" {
					t.Errorf("/etc/hostname = %q", got)
				}
				if got := readFile(t, e, HostsFile); got != "127.0.0.1 localhost\n" {
					t.Errorf("/etc/hosts = %q", got)
				}
				if left, _ := os.ReadDir(marks); len(left) > 0 {
					t.Errorf("a metacharacter was interpreted: %v created", left)
				}
			})
		}
	}
}
