package imds

import (
	"strings"
	"testing"
)

func TestResolveEndpoint(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	tests := []struct {
		name       string
		flag, conf string
		mode       string
		env        map[string]string
		want       string
		wantSource EndpointSource
		wantErr    string
	}{
		{name: "default ipv4", want: DefaultIPv4Endpoint, wantSource: SourceDefault},
		{name: "ipv6 mode", mode: "ipv6", want: DefaultIPv6Endpoint, wantSource: SourceDefault},
		{name: "ipv6 mode from env", env: map[string]string{EndpointModeEnv: "IPv6"}, want: DefaultIPv6Endpoint, wantSource: SourceDefault},
		{name: "config", conf: "http://10.9.9.9", want: "http://10.9.9.9", wantSource: SourceConfig},
		{name: "env beats config", conf: "http://c", env: map[string]string{EndpointEnv: "http://e:80/"}, want: "http://e:80", wantSource: SourceEnv},
		{name: "flag beats env", flag: "http://f", conf: "http://c", env: map[string]string{EndpointEnv: "http://e"}, want: "http://f", wantSource: SourceFlag},
		{name: "bad scheme", flag: "ftp://x", wantErr: "from flag: \"ftp://x\": scheme must be http or https"},
		{name: "no host", conf: "http://", wantErr: "no host"},
		{name: "path", env: map[string]string{EndpointEnv: "http://x/latest"}, wantErr: "must not have a path"},
		{name: "bad mode", mode: "ipx", wantErr: `mode "ipx"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src, err := ResolveEndpoint(tt.flag, tt.conf, tt.mode, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want || src != tt.wantSource {
				t.Errorf("got %q %q %v, want %q %q", got, src, err, tt.want, tt.wantSource)
			}
		})
	}
}
