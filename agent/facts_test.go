package agent

import (
	"reflect"
	"testing"
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
