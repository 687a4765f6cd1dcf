package modules

import (
	"reflect"
	"testing"
)

func TestParseStages(t *testing.T) {
	tests := []struct {
		in      string
		want    []Stage
		wantErr bool
	}{
		{"all", Stages(), false},
		{"", Stages(), false},
		{"final", []Stage{StageFinal}, false},
		{"local", []Stage{StageLocal}, false},
		{"init", nil, true},
		{"network,config", []Stage{StageNetwork, StageConfig}, false},
		{"config,network", nil, true},
		{"final,final", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseStages(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseStages(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestCloudInitList(t *testing.T) {
	for name, want := range map[string]string{"scripts_user": "cloud_final_modules", "users_groups": "cloud_init_modules", "runcmd": "cloud_config_modules", "software": "", "boothook": ""} {
		if got := CloudInitList(name); got != want {
			t.Errorf("CloudInitList(%s) = %q, want %q", name, got, want)
		}
	}
}
