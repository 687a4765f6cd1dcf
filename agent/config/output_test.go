package config

import "testing"

func TestOutput(t *testing.T) {
	tests := []struct {
		name, doc, mode string
		want            Output
		ok              bool
	}{
		{"unset", "a: 1\n", "final", Output{}, false},
		{"all as cloud-init's default", "output: {all: '| tee -a /var/log/cloud-init-output.log'}\n", "init",
			Output{OutputRedirect{"|", "tee -a /var/log/cloud-init-output.log"}, OutputRedirect{"|", "tee -a /var/log/cloud-init-output.log"}}, true},
		{"mode wins over all", "output: {all: '>> /a', final: '> /f'}\n", "final",
			Output{OutputRedirect{">", "/f"}, OutputRedirect{">", "/f"}}, true},
		{"other mode takes all", "output: {all: '>> /a', final: '> /f'}\n", "config",
			Output{OutputRedirect{">>", "/a"}, OutputRedirect{">>", "/a"}}, true},
		{"no all, other mode", "output: {final: '> /f'}\n", "init", Output{}, false},
		{"list", "output: {init: ['>> /o', '/e']}\n", "init",
			Output{OutputRedirect{">>", "/o"}, OutputRedirect{">>", "/e"}}, true},
		{"list stdout only", "output: {init: ['>> /o']}\n", "init", Output{Stdout: OutputRedirect{">>", "/o"}}, true},
		{"mapping with &1", "output: {config: {output: '|logger', error: '&1'}}\n", "config",
			Output{OutputRedirect{"|", "logger"}, OutputRedirect{"|", "logger"}}, true},
		{"bare file appends", "output: {all: /var/log/x.log}\n", "final",
			Output{OutputRedirect{">>", "/var/log/x.log"}, OutputRedirect{">>", "/var/log/x.log"}}, true},
		{"null", "output: {all: null}\n", "final", Output{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDoc("t", []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := Merge(d).Output(tt.mode)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Output(%q) = %+v, %v; want %+v, %v", tt.mode, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestOutputSchema(t *testing.T) {
	for _, tt := range []struct {
		doc         string
		errs, warns bool
	}{
		{"output: {all: '| tee -a /var/log/cloud-init-output.log'}\n", false, false},
		{"output: {init: {output: '> /a', error: '&1'}, final: ['>> /b', null]}\n", false, false},
		{"output: {every: '> /a'}\n", false, true}, // unknown keys warn, as elsewhere
		{"output: {all: 3}\n", true, false},
		{"output: {all: {output: [1]}}\n", true, false},
	} {
		d, err := ParseDoc("t", []byte(tt.doc))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := Merge(d).Get(OutputKey)
		ds := Validate("t", OutputKey, v.Node, OutputType)
		if got := HasErrors(ds); got != tt.errs || (len(ds) > 0) != (tt.errs || tt.warns) {
			t.Errorf("%q: %v, want errors %v warnings %v", tt.doc, ds, tt.errs, tt.warns)
		}
	}
}
