package powerstate

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/modtest"
)

// TestRun checks the decided action and the condition handling with a fake
// executor; conditions are real commands run through the Runner.
func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		request string  // a module's reboot request, if any
		want    *Action // nil: nothing executed
		wantErr string
	}{
		{name: "reboot now", doc: "power_state: {mode: reboot}",
			want: &Action{Mode: "reboot", Timeout: 30 * time.Second}},
		{name: "poweroff +5 with message and timeout", doc: "power_state: {mode: poweroff, delay: '+5', message: Bye, timeout: 120}",
			want: &Action{Mode: "poweroff", Delay: 5 * time.Minute, Message: "Bye", Timeout: 2 * time.Minute}},
		{name: "integer delay is minutes", doc: "power_state: {mode: halt, delay: 2}",
			want: &Action{Mode: "halt", Delay: 2 * time.Minute, Timeout: 30 * time.Second}},
		{name: "string delay without +", doc: "power_state: {mode: reboot, delay: '10'}",
			want: &Action{Mode: "reboot", Delay: 10 * time.Minute, Timeout: 30 * time.Second}},
		{name: "delay now", doc: "power_state: {mode: reboot, delay: now}",
			want: &Action{Mode: "reboot", Timeout: 30 * time.Second}},
		{name: "condition true", doc: "power_state: {mode: reboot, condition: true}",
			want: &Action{Mode: "reboot", Timeout: 30 * time.Second}},
		{name: "condition false", doc: "power_state: {mode: reboot, condition: false}"},
		{name: "condition shell exits 0", doc: `power_state: {mode: reboot, condition: "test -d /"}`,
			want: &Action{Mode: "reboot", Timeout: 30 * time.Second}},
		{name: "condition shell exits 1", doc: `power_state: {mode: reboot, condition: "test -e /no/such/file"}`},
		{name: "condition argv exits 0", doc: `power_state: {mode: reboot, condition: [sh, -c, "exit 0"]}`,
			want: &Action{Mode: "reboot", Timeout: 30 * time.Second}},
		{name: "condition argv exits 3", doc: `power_state: {mode: reboot, condition: [sh, -c, "exit 3"]}`},
		{name: "condition not found", doc: `power_state: {mode: reboot, condition: [no-such-cmd-xyz]}`,
			wantErr: "condition (line 1): power_state condition: no-such-cmd-xyz: command not found"},
		{name: "no mode", doc: "power_state: {delay: 5}", wantErr: "test.yaml:1: power_state: mode is required"},
		{name: "bad mode", doc: "power_state: {mode: sleep}", wantErr: "mode: expected poweroff, reboot or halt"},
		{name: "bad delay", doc: "power_state: {mode: reboot, delay: soon}", wantErr: `delay: "soon": expected "now" or a number of minutes`},
		{name: "negative delay", doc: "power_state: {mode: reboot, delay: -1}", wantErr: `delay: "-1"`},
		{name: "negative timeout", doc: "power_state: {mode: reboot, timeout: -1}", wantErr: "timeout: expected a number of seconds"},
		{name: "not a mapping", doc: "power_state: reboot", wantErr: "expected a mapping with a mode"},
		{name: "no key, no request", doc: "runcmd: [true]"},
		{name: "no key, a reboot requested", doc: "runcmd: [true]", request: "package_update_upgrade_install: /var/run/reboot-required exists\n",
			want: &Action{Mode: "reboot", Timeout: 30 * time.Second,
				Message: "ec2init: reboot requested: package_update_upgrade_install: /var/run/reboot-required exists"}},
		{name: "the user's change wins over a request", doc: "power_state: {mode: poweroff, delay: 1}", request: "x\n",
			want: &Action{Mode: "poweroff", Delay: time.Minute, Timeout: 30 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := modtest.Env(t)
			if tt.request != "" {
				if err := env.Root.MkdirAll("/run/ec2init", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := env.Root.WriteFile(modules.RebootRequestFile, []byte(tt.request), 0o644, nil); err != nil {
					t.Fatal(err)
				}
			}
			var got *Action
			p := PowerState{Execute: func(_ context.Context, _ *modules.Env, a Action) error {
				got = &a
				return nil
			}}
			err := p.Run(context.Background(), env, modtest.Config(t, tt.doc+"\n"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("executed %+v despite the error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("executed %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSystemdRunArgv(t *testing.T) {
	tests := []struct {
		name string
		a    Action
		want []string
	}{
		{"reboot now", Action{Mode: "reboot", Timeout: 30 * time.Second}, []string{
			"systemd-run", "--unit=ec2init-power-state", "--description=ec2init power_state: reboot", "--collect", "--no-block",
			"--property=After=ec2init-final.service", "--property=JobTimeoutSec=30s", "--property=JobTimeoutAction=reboot",
			"--", "systemctl", "reboot"}},
		{"poweroff in 5 minutes with a message", Action{Mode: "poweroff", Delay: 5 * time.Minute, Message: "Bye $USER", Timeout: 0}, []string{
			"systemd-run", "--unit=ec2init-power-state", "--description=ec2init power_state: poweroff", "--collect", "--no-block",
			"--property=After=ec2init-final.service", "--property=JobTimeoutSec=1s", "--property=JobTimeoutAction=poweroff",
			"--on-active=5min", "--", "systemctl", "poweroff", "--message=Bye $$USER"}},
		{"halt has no timeout action", Action{Mode: "halt", Timeout: 30 * time.Second}, []string{
			"systemd-run", "--unit=ec2init-power-state", "--description=ec2init power_state: halt", "--collect", "--no-block",
			"--property=After=ec2init-final.service", "--", "systemctl", "halt"}},
	}
	for _, tt := range tests {
		if got := SystemdRunArgv(tt.a); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// The default executor never touches the machine when the root is not the
// running system (all tests; preparing an image).
func TestScheduleRefusesUnderRoot(t *testing.T) {
	env, out := modtest.Env(t)
	if err := (PowerState{}).Run(context.Background(), env, modtest.Config(t, "power_state: {mode: poweroff}\n")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "not scheduling poweroff of this machine: the root is "+env.Root.Prefix()) {
		t.Errorf("console %q", out.String())
	}
}

func TestSchema(t *testing.T) {
	r, err := modules.NewRegistry(PowerState{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := config.ParseDoc("u.yaml", []byte("power_state:\n  mode: sleep\n  delay: [1]\n  condition: {a: b}\n  timeout: '30'\n  wait: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, diag := range r.ValidateDoc(d) {
		got = append(got, diag.String())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{
		"u.yaml:2:9: error: power_state.mode: expected one of poweroff, reboot, halt",
		"u.yaml:3:10: error: power_state.delay: expected integer or string, got a list",
		"u.yaml:4:14: error: power_state.condition: expected boolean or string or list of",
		"u.yaml:5:12: error: power_state.timeout: expected integer",
		`u.yaml:6:3: warning: power_state.wait: unknown key "wait"`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("diagnostics lack %q:\n%s", w, all)
		}
	}
	d, _ = config.ParseDoc("u.yaml", []byte("power_state: {delay: now}\n"))
	if ds := r.ValidateDoc(d); len(ds) != 1 || !strings.Contains(ds[0].String(), `missing required key "mode"`) {
		t.Errorf("missing mode: %v", ds)
	}
}

// TestSystemdAcceptsProperties writes what SystemdRunArgv asks systemd-run
// for as unit files and lets the installed systemd check them: property
// names and values (JobTimeoutAction= has no halt, for one) are systemd's
// to accept, not this package's to assume.
func TestSystemdAcceptsProperties(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	for _, a := range []Action{
		{Mode: ModeReboot, Timeout: 30 * time.Second, Message: "Bye $USER"},
		{Mode: ModePoweroff, Delay: 5 * time.Minute},
		{Mode: ModeHalt},
	} {
		dir := t.TempDir()
		var unit, service, timer []string
		argv := SystemdRunArgv(a)
		for i, arg := range argv {
			switch {
			case arg == "--":
				words := make([]string, 0, len(argv)-i-1)
				for _, w := range argv[i+1:] {
					words = append(words, strconv.Quote(w))
				}
				service = append(service, "ExecStart="+strings.Join(words, " "))
			case slices.Contains(argv[:i], "--"): // the command's own words
			case strings.HasPrefix(arg, "--description="):
				unit = append(unit, "Description="+strings.TrimPrefix(arg, "--description="))
			case strings.HasPrefix(arg, "--property="):
				unit = append(unit, strings.TrimPrefix(arg, "--property="))
			case strings.HasPrefix(arg, "--on-active="):
				timer = append(timer, "OnActiveSec="+strings.TrimPrefix(arg, "--on-active="))
			}
		}
		files := []string{filepath.Join(dir, ScheduledUnit+".service")}
		body := "[Unit]\n" + strings.Join(unit, "\n") + "\n[Service]\nType=oneshot\n" + strings.Join(service, "\n") + "\n"
		if err := os.WriteFile(files[0], []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if len(timer) > 0 {
			files = append(files, filepath.Join(dir, ScheduledUnit+".timer"))
			if err := os.WriteFile(files[1], []byte("[Timer]\n"+strings.Join(timer, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, files...)...).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("Failed to parse")) || bytes.Contains(out, []byte("Unknown key")) {
			t.Errorf("%s: systemd rejects the unit: %v\n%s\n%s", a.Mode, err, out, body)
		}
	}
}
