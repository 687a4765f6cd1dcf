package ec2metadata

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Args
		wantErr string
	}{
		{name: "none", args: nil, want: Args{}},
		{name: "short and long in order", args: []string{"-i", "--ami-id", "-z"},
			want: Args{Actions: []Action{{Name: "instance-id"}, {Name: "ami-id"}, {Name: "availability-zone"}}}},
		{name: "bundled shorts", args: []string{"-aih"},
			want: Args{Actions: []Action{{Name: "ami-id"}, {Name: "instance-id"}, {Name: "local-hostname"}}}},
		{name: "-h is local-hostname, --help is help", args: []string{"-h", "--help"},
			want: Args{Actions: []Action{{Name: "local-hostname"}}, Help: true}},
		{name: "abbreviated long option", args: []string{"--inst"}, wantErr: "option '--inst' is ambiguous; possibilities: '--instance-id' '--instance-type'"},
		{name: "unique prefix", args: []string{"--reg", "--user"},
			want: Args{Actions: []Action{{Name: "region"}, {Name: "user-data"}}}},
		{name: "path forms", args: []string{"--path", "a", "--path=b/c", "--pat", "d"},
			want: Args{Actions: []Action{{Name: "path", Path: "a"}, {Name: "path", Path: "b/c"}, {Name: "path", Path: "d"}}}},
		{name: "quiet anywhere", args: []string{"-i", "--quiet"},
			want: Args{Actions: []Action{{Name: "instance-id"}}, Quiet: true}},
		{name: "operands ignored, -- ends options", args: []string{"x", "-i", "--", "-a"},
			want: Args{Actions: []Action{{Name: "instance-id"}}, Operands: []string{"x", "-a"}}},
		{name: "extensions", args: []string{"--json", "--endpoint", "http://x", "--allow-imdsv1", "--log-level=debug"},
			want: Args{JSON: true, Endpoint: "http://x", AllowV1: true, LogLevel: "debug"}},
		{name: "unknown long", args: []string{"--bogus"}, wantErr: "unrecognized option '--bogus'"},
		{name: "unknown short", args: []string{"-x"}, wantErr: "invalid option -- 'x'"},
		{name: "missing argument", args: []string{"--path"}, wantErr: "option '--path' requires an argument"},
		{name: "argument not allowed", args: []string{"--ami-id=3"}, wantErr: "option '--ami-id' doesn't allow an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.args)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct{ in, label, fetch string }{
		{"instance-id", "latest/meta-data/instance-id", "latest/meta-data/instance-id"},
		{"placement//region", "latest/meta-data/placement/region", "latest/meta-data/placement/region"},
		{"meta-data/ami-id", "latest/meta-data/ami-id", "latest/meta-data/ami-id"},
		{"/dynamic/instance-identity/document", "latest/dynamic/instance-identity/document", "latest/dynamic/instance-identity/document"},
		{"latest/user-data", "latest/user-data", "latest/user-data"},
		{"/latest/meta-data/", "/latest/meta-data/", "latest/meta-data/"},
		{"2009-04-04/meta-data/ami-id", "2009-04-04/meta-data/ami-id", "2009-04-04/meta-data/ami-id"},
		{"1.0/meta-data/", "1.0/meta-data/", "1.0/meta-data/"},
		{"/", "/", ""},
		{"", "latest/meta-data/", "latest/meta-data/"},
	}
	for _, tt := range tests {
		label, fetch := NormalizePath(tt.in)
		if label != tt.label || fetch != tt.fetch {
			t.Errorf("NormalizePath(%q) = %q, %q; want %q, %q", tt.in, label, fetch, tt.label, tt.fetch)
		}
	}
}
