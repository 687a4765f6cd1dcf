package agent

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
	"github.com/ec2init/ec2init/agent/sys"
)

// TestEnvFileRoundTrip: what EnvFile writes, ParseEnvFile reads back, with
// every character the quoting has to carry.
func TestEnvFileRoundTrip(t *testing.T) {
	tests := []map[string]string{
		{},
		{"EC2_INSTANCE_ID": "i-0123456789abcdef0", "EC2_REGION": "us-east-1"},
		{"TAG": `a "quoted" $HOME \ back` + "`tick`", "EMPTY": ""},
	}
	for _, env := range tests {
		got, err := ParseEnvFile(EnvFile(env))
		if err != nil || !reflect.DeepEqual(got, env) {
			t.Errorf("%q: %q %v", env, got, err)
		}
	}
	if _, err := ParseEnvFile([]byte("A=unquoted\n")); err == nil {
		t.Error("an unquoted value parsed")
	}
}

// TestOversizeFactLeftOut: a 1 MiB IMDS value would be in every child's
// environment, and the kernel refuses such an exec (E2BIG): the fact is
// left out with a warning naming the variable, and commands run.
func TestOversizeFactLeftOut(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	huge := strings.Repeat("h", 1<<20)
	sim.Set("meta-data/local-hostname", huge)
	sim.Set("meta-data/instance-type", "m5.large\x00evil")
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	in, err := client.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	env := FactsEnvLog(in, zap.New(core))
	for _, k := range []string{"EC2_LOCAL_HOSTNAME", "EC2_INSTANCE_TYPE"} {
		if _, ok := env[k]; ok {
			t.Errorf("%s is in the facts", k)
		}
		w := logs.FilterField(zap.String("variable", k)).All()
		if len(w) != 1 || !strings.Contains(w[0].Message, k) || strings.Contains(w[0].Message, "hhhh") || strings.Contains(w[0].Message, "evil") {
			t.Errorf("warnings for %s: %v", k, w)
		}
	}
	if env["EC2_INSTANCE_ID"] != "i-0123456789abcdef0" {
		t.Errorf("the other facts are gone: %v", env)
	}

	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := func(env map[string]string) (string, error) {
		var out bytes.Buffer
		r := &sys.Runner{Root: root, Log: zap.NewNop(), Env: env}
		res, err := r.Run(context.Background(), sys.Cmd{Name: "facts", Argv: []string{"/bin/sh", "-c", `echo "$EC2_INSTANCE_ID"`}, Output: &out})
		if err == nil && res.ExitCode != 0 {
			err = fmt.Errorf("exit %d", res.ExitCode)
		}
		return strings.TrimSpace(out.String()), err
	}
	if out, err := run(env); err != nil || out != "i-0123456789abcdef0" {
		t.Errorf("a command with the facts: %q, %v", out, err)
	}
	// What the cap prevents: the same command with the value in.
	if _, err := run(map[string]string{"EC2_LOCAL_HOSTNAME": huge}); err == nil {
		t.Error("a 1 MiB variable did not stop the exec: the test shows nothing")
	}
}
