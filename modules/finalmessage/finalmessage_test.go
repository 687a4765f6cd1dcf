package finalmessage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

func TestRun(t *testing.T) {
	fixed := FinalMessage{
		Version: "1.2.3",
		Now:     func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600)) },
		Uptime:  func() (float64, error) { return 42.5, nil },
	}
	tests := []struct {
		name string
		doc  string
		mod  FinalMessage
		want string
	}{
		{name: "default", doc: "runcmd: []\n", mod: fixed,
			want: "ec2init v. 1.2.3 finished at Tue, 04 Mar 2025 04:06:07 +0000. Datasource Ec2. Up 42.50 seconds\n"},
		{name: "empty is the default", doc: "final_message: '  '\n", mod: fixed,
			want: "ec2init v. 1.2.3 finished at Tue, 04 Mar 2025 04:06:07 +0000. Datasource Ec2. Up 42.50 seconds\n"},
		{name: "upper, braces, lower", doc: "final_message: \"$INSTANCE_ID up ${UPTIME}s, $version via $DATASOURCE\"\n", mod: fixed,
			want: "i-0abc up 42.50s, 1.2.3 via Ec2\n"},
		{name: "unknown and mixed case left", doc: "final_message: \"cost $5 for $HOME, $Version\"\n", mod: fixed,
			want: "cost $5 for $HOME, $Version\n"},
		{name: "multi-line trimmed", doc: "final_message: |\n  done $TIMESTAMP\n  bye\n", mod: fixed,
			want: "done Tue, 04 Mar 2025 04:06:07 +0000\nbye\n"},
		{name: "jinja", doc: "final_message: |\n  ## template: jinja\n  {{ version }} / {{uptime}} / {{ nope }} / $UPTIME\n", mod: fixed,
			want: "1.2.3 / 42.50 / {{ nope }} / $UPTIME\n"},
		{name: "uptime unknown", doc: "final_message: up $UPTIME\n",
			mod:  FinalMessage{Uptime: func() (float64, error) { return 0, errors.New("no proc") }},
			want: "up unknown\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			env := &modules.Env{Console: &out, Instance: &imds.Instance{InstanceID: "i-0abc"}}
			if err := tt.mod.Run(context.Background(), env, modtest.Config(t, tt.doc)); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("console %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	if !(FinalMessage{}).Wanted(modtest.Config(t, "runcmd: []\n")) {
		t.Error("not wanted without final_message: the default message must print")
	}
	if _, err := os.Stat("/proc/uptime"); err != nil {
		t.Skip("no /proc/uptime")
	}
	if up, err := procUptime(); err != nil || up <= 0 {
		t.Errorf("procUptime = %v, %v", up, err)
	}
	if v := (FinalMessage{}).version(&modules.Env{}); v == "" {
		t.Error("empty version")
	}
}

func TestSchema(t *testing.T) {
	r, err := modules.NewRegistry(FinalMessage{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.ParseDoc("u.yaml", []byte("final_message: [a]\n"))
	if err != nil {
		t.Fatal(err)
	}
	diags := r.ValidateDoc(d)
	if len(diags) != 1 || !strings.Contains(diags[0].String(), "u.yaml:1:16: error: final_message: expected string, got a list") {
		t.Errorf("diagnostics %v", diags)
	}
}
