package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/internal/testnet"
)

// binary is ec2init built once for the package's tests: the CLI is tested
// as users meet it, a process with exit codes and stderr.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ec2init-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ec2init")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("build ec2init: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, argv0 string, args ...string) result {
	t.Helper()
	cmd := exec.Command(argv0, args...)
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, stdout.String(), stderr.String()}
}

func TestMetadataCommand(t *testing.T) {
	_, url := imdssim.Start(t, imdssim.Options{})
	ep := "--endpoint=" + url

	r := runCLI(t, binary, "metadata", "-i", "-z", ep)
	if r.code != 0 || r.stdout != "instance-id: i-0123456789abcdef0\nplacement: us-east-1a\n" {
		t.Errorf("metadata -i -z: %+v", r)
	}

	r = runCLI(t, binary, "metadata", "--json", ep)
	var in map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &in) != nil || in["instance_id"] != "i-0123456789abcdef0" {
		t.Errorf("--json: %+v", r)
	}

	r = runCLI(t, binary, "metadata", "--tree", ep)
	if r.code != 0 || !strings.Contains(r.stdout, "meta-data/placement/region: us-east-1\n") ||
		!strings.Contains(r.stdout, "web-server-role: (redacted") || strings.Contains(r.stdout, "SecretAccessKey") {
		t.Errorf("--tree: code %d, stderr %q", r.code, r.stderr)
	}

	r = runCLI(t, binary, "metadata", "--facts", ep)
	for _, want := range []string{"Key pair:", "my-key", "Placement group:", "my-cluster-pg (partition 2)", "subnet-0a1b2c3d4e5f60002"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--facts lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runCLI(t, binary, "metadata", "--help")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ec2-metadata v0.1.5\n") || !strings.Contains(r.stdout, "--facts") {
		t.Errorf("--help: %+v", r)
	}

	// Installed as ec2-metadata (a symlink), the binary is that command.
	link := filepath.Join(t.TempDir(), "ec2-metadata")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, link, "-t", ep)
	if r.code != 0 || r.stdout != "instance-type: m6i.large\n" {
		t.Errorf("as ec2-metadata: %+v", r)
	}
}

func TestBadInput(t *testing.T) {
	closed := testnet.ClosedPort(t)
	notHTTP := testnet.NotHTTP(t)

	badData := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badData, []byte("meta-data:\n  instance-id: i-1\n  security-groups:\n    - {a: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"unreachable, ec2-metadata mode", []string{"metadata", "-i", "--endpoint", closed},
			"[ERROR] Could not get IMDSv2 token. Instance Metadata might have been disabled or this is not an EC2 instance.\n"},
		{"unreachable, json", []string{"metadata", "--json", "--endpoint", closed},
			"ec2init: instance metadata at " + closed + ": IMDSv2 token: connection refused\n"},
		{"not an HTTP endpoint", []string{"metadata", "--facts", "--endpoint", notHTTP},
			"ec2init: instance metadata at " + notHTTP + ": IMDSv2 token: the endpoint does not speak HTTP like IMDS\n"},
		{"endpoint not a URL", []string{"metadata", "--endpoint", "169.254.169.254"},
			"ec2init: imds endpoint from flag: \"169.254.169.254\": scheme must be http or https\n"},
		{"malformed simulator data", []string{"imds", "serve", "--data", badData},
			"ec2init: imds data file " + badData + ": line 4: meta-data/security-groups: a list may hold only values\n"},
		{"unknown ec2-metadata option", []string{"metadata", "--bogus"},
			"ec2-metadata: unrecognized option '--bogus'\nTerminating...\n"},
		{"unknown command flag", []string{"--bogus"}, "ec2init: unknown flag: --bogus\n"},
		{"bad fault spec", []string{"imds", "serve", "--fail", "x"}, "ec2init: --fail: fault \"x\": want N:STATUS with STATUS 400-599, e.g. 3:503\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, binary, tt.args...)
			if r.code == 0 {
				t.Errorf("exit 0")
			}
			if r.stderr != tt.stderr {
				t.Errorf("stderr = %q\nwant     %q", r.stderr, tt.stderr)
			}
			if strings.Contains(r.stderr, "goroutine") {
				t.Errorf("stack trace on stderr")
			}
		})
	}
}
