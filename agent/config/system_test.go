package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSystem(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    IMDS
		wantErr string
	}{
		{name: "no files", want: IMDS{}},
		{
			name:  "main file",
			files: map[string]string{SystemFile: "imds:\n  endpoint: http://127.0.0.1:1338\n  call_timeout: 3s\n"},
			want:  IMDS{Endpoint: "http://127.0.0.1:1338", CallTimeout: Duration(3 * time.Second)},
		},
		{
			name: "conf.d overrides key by key, in lexical order",
			files: map[string]string{
				SystemFile:                   "imds:\n  endpoint: http://a\n  max_attempts: 3\n",
				SystemDir + "/20-b.yaml":     "imds:\n  endpoint: http://b\n",
				SystemDir + "/10-a.yaml":     "imds:\n  endpoint: http://ignored\n  allow_imdsv1: true\n",
				SystemDir + "/README":        "not yaml, not read",
				SystemDir + "/30-empty.yaml": "# only a comment\n",
			},
			want: IMDS{Endpoint: "http://b", MaxAttempts: 3, AllowIMDSv1: true},
		},
		{
			name:    "unknown key names file and line",
			files:   map[string]string{SystemFile: "imds:\n  endpoint: http://a\n  endpont: typo\n"},
			wantErr: "config.yaml: yaml: unmarshal errors:\n  line 3: field endpont not found",
		},
		{
			name:    "bad duration names line",
			files:   map[string]string{SystemDir + "/x.yaml": "imds:\n  deadline: soon\n"},
			wantErr: `x.yaml: line 2: not a duration`,
		},
		{
			name:    "bad duration does not quote its value",
			files:   map[string]string{SystemDir + "/x.yaml": "imds:\n  deadline: hunter2secret\n"},
			wantErr: `x.yaml: line 2: not a duration`,
		},
		{
			name:    "malformed yaml",
			files:   map[string]string{SystemFile: "imds: [\n"},
			wantErr: "config.yaml: yaml: line",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for rel, body := range tt.files {
				writeFile(t, root, rel, body)
			}
			got, err := LoadSystem(root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("err = %v quotes the value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.IMDS != tt.want {
				t.Errorf("got %+v, want %+v", got.IMDS, tt.want)
			}
		})
	}
}

func TestDaemonConfig(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, SystemFile, "daemon:\n  interval: 10s\n  hooks:\n    spot_interruption:\n      - systemctl stop app\n      - [/usr/local/bin/drain, --now]\n")
	got, err := LoadSystem(root)
	if err != nil {
		t.Fatal(err)
	}
	hooks := got.Daemon.Hooks["spot_interruption"]
	if got.Daemon.Interval.Std() != 10*time.Second || len(hooks) != 2 ||
		strings.Join(hooks[0], " ") != "/bin/sh -c systemctl stop app" || strings.Join(hooks[1], " ") != "/usr/local/bin/drain --now" {
		t.Errorf("daemon config %+v", got.Daemon)
	}
	writeFile(t, root, SystemFile, "daemon:\n  hooks:\n    tags_changed:\n      - {a: b}\n")
	if _, err := LoadSystem(root); err == nil || !strings.Contains(err.Error(), "line 4: a command is a string or a list") {
		t.Errorf("bad hook: %v", err)
	}
}
