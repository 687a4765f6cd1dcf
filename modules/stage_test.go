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
