package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// plain decodes every merged key of c into plain values, for comparison.
func plain(t *testing.T, c *CloudConfig) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, k := range c.Keys() {
		var v any
		if _, err := c.Decode(k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func parse(t *testing.T, src, body string) Doc {
	t.Helper()
	d, err := ParseDoc(src, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReadCloudInitFiles: cloud.cfg, then cloud.cfg.d's *.cfg regular
// files by name, as cloud-init's read_conf_with_confd lists them.
func TestReadCloudInitFiles(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		dirs  []string
		want  []string
	}{
		{name: "none"},
		{
			name: "cloud.cfg then cloud.cfg.d by name, .cfg only",
			files: map[string]string{
				CloudInitFile:                    "a: 1\n",
				CloudInitDir + "/90_z.cfg":       "b: 1\n",
				CloudInitDir + "/05_logging.cfg": "c: 1\n",
				CloudInitDir + "/README":         "not read",
				CloudInitDir + "/99.cfg.bak":     "not read",
				CloudInitDir + "/.hidden.cfg":    "read: cloud-init does",
			},
			dirs: []string{CloudInitDir + "/dir.cfg"},
			want: []string{CloudInitFile, CloudInitDir + "/.hidden.cfg", CloudInitDir + "/05_logging.cfg", CloudInitDir + "/90_z.cfg"},
		},
		{
			name:  "cloud.cfg.d without cloud.cfg",
			files: map[string]string{CloudInitDir + "/10.cfg": "a: 1\n"},
			want:  []string{CloudInitDir + "/10.cfg"},
		},
		{
			name: "conf_d names another directory",
			files: map[string]string{
				CloudInitFile:               "conf_d: /etc/other.d\n",
				CloudInitDir + "/10.cfg":    "not read\n",
				"/etc/other.d/20-other.cfg": "a: 1\n",
			},
			want: []string{CloudInitFile, "/etc/other.d/20-other.cfg"},
		},
		{
			name:  "empty conf_d: no directory",
			files: map[string]string{CloudInitFile: "conf_d: ''\n", CloudInitDir + "/10.cfg": "a: 1\n"},
			want:  []string{CloudInitFile},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, b := range tt.files {
				writeFile(t, root, p, b)
			}
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			srcs, err := ReadCloudInitFiles(root)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range srcs {
				got = append(got, s.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("files %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMergeSystem: cloud-init's rules for its system configuration: a
// later file wins, mappings merge key by key (recursively), lists are
// replaced whole, and a file's merge_how changes that for its own merge.
func TestMergeSystem(t *testing.T) {
	tests := []struct {
		name string
		docs []string // lowest priority first: cloud.cfg, cloud.cfg.d/...
		want map[string]any
	}{
		{
			name: "later file wins a scalar and a list",
			docs: []string{"preserve_hostname: false\nusers: [default]\n", "preserve_hostname: true\nusers: [alice]\n"},
			want: map[string]any{"preserve_hostname": true, "users": []any{"alice"}},
		},
		{
			name: "mappings merge recursively",
			docs: []string{
				"system_info:\n  distro: amazon\n  default_user:\n    name: ec2-user\n    shell: /bin/bash\n    groups: [wheel, adm]\n",
				"system_info:\n  default_user:\n    name: builder\n    groups: [ops]\n",
			},
			want: map[string]any{"system_info": map[string]any{"distro": "amazon",
				"default_user": map[string]any{"name": "builder", "shell": "/bin/bash", "groups": []any{"ops"}}}},
		},
		{
			name: "module list of a later file replaces the list",
			docs: []string{"cloud_final_modules: [scripts_user, final_message]\n", "cloud_final_modules: [runcmd]\n"},
			want: map[string]any{"cloud_final_modules": []any{"runcmd"}},
		},
		{
			name: "a lower file's merge_how without recurse_array: the higher list stays",
			docs: []string{"merge_how: list(append)+dict()+str()\nruncmd: [a]\n", "runcmd: [b]\n"},
			want: map[string]any{"runcmd": []any{"b"}},
		},
		{
			name: "a lower file's dict(recurse_array)+list(append) appends into the higher one's",
			docs: []string{"merge_how: dict(recurse_array)+list(append)+str()\nruncmd: [a]\n", "runcmd: [b]\n"},
			want: map[string]any{"runcmd": []any{"b", "a"}},
		},
		{
			// m_dict recurses into the earlier file's mapping; m_str then
			// returns what it merges with (cloud-init's runtime).
			name: "a string over a mapping: the mapping, as m_str merges",
			docs: []string{"datasource: {Ec2: {timeout: 5}}\n", "datasource: none\n"},
			want: map[string]any{"datasource": map[string]any{"Ec2": map[string]any{"timeout": 5}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var docs []Doc
			for i, b := range tt.docs {
				docs = append(docs, parse(t, "f"+string(rune('0'+i)), b))
			}
			if got := plain(t, MergeSystem(docs...)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("merged %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// TestOver: the user's cloud-config over the system configuration, as
// cloud-init merges them: the user's values win, mappings merge.
func TestOver(t *testing.T) {
	base := MergeSystem(parse(t, "/etc/cloud/cloud.cfg", "disable_root: true\nssh_pwauth: false\napt:\n  preserve_sources_list: true\nruncmd: [base]\n"))
	user := Merge(parse(t, "user data part 1", "ssh_pwauth: true\napt:\n  sources: {x: {source: deb http://x}}\nruncmd: [user]\n"))
	got := plain(t, user.Over(base))
	want := map[string]any{
		"disable_root": true, "ssh_pwauth": true, "runcmd": []any{"user"},
		"apt": map[string]any{"preserve_sources_list": true, "sources": map[string]any{"x": map[string]any{"source": "deb http://x"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged %#v\nwant %#v", got, want)
	}
	// Sources stay those of the layer that set the key, for messages.
	if v, _ := user.Over(base).Get("disable_root"); v.Source != "/etc/cloud/cloud.cfg" || v.KeyLine != 1 {
		t.Errorf("disable_root from %s:%d", v.Source, v.KeyLine)
	}
	if v, _ := user.Over(base).Get("apt"); v.Source != "user data part 1" {
		t.Errorf("apt from %s", v.Source)
	}
	if plain(t, user)["disable_root"] != nil || len(plain(t, base)) != 4 {
		t.Error("Over changed its inputs")
	}
}

func TestCloudInitSettings(t *testing.T) {
	f := false
	tests := []struct {
		name         string
		docs         []string
		want         CloudInitSystem
		wantFindings []string
	}{
		{name: "nothing"},
		{
			name: "Ec2 datasource",
			docs: []string{"datasource:\n  Ec2:\n    metadata_urls: ['http://[fd00:ec2::254]/']\n    timeout: 5\n    max_wait: '10'\n    retries: 2\n    apply_full_imds_network_config: true\n  NoCloud: {seedfrom: x}\n"},
			want: CloudInitSystem{IMDS: IMDS{Endpoint: "http://[fd00:ec2::254]", RequestTimeout: Duration(5 * time.Second),
				Deadline: Duration(10 * time.Second), MaxAttempts: 3}},
		},
		{
			name:         "several URLs: the first, and a finding",
			docs:         []string{"datasource:\n  Ec2:\n    metadata_urls: [http://a, http://b]\n"},
			want:         CloudInitSystem{IMDS: IMDS{Endpoint: "http://a"}},
			wantFindings: []string{"f0:3: datasource.Ec2.metadata_urls: ec2init asks the first URL only; 1 others ignored"},
		},
		{
			name:         "bad values keep the defaults, with findings",
			docs:         []string{"datasource:\n  Ec2:\n    timeout: soon\n    max_wait: -1\n"},
			wantFindings: []string{"f0:3: datasource.Ec2.timeout: expected a number of seconds; the default applies"},
		},
		{
			name: "default user, merged over files",
			docs: []string{
				"system_info:\n  default_user:\n    name: ec2-user\n    gecos: EC2 Default User\n    groups: [wheel, adm]\n    sudo: ['ALL=(ALL) NOPASSWD:ALL']\n    shell: /bin/bash\n    lock_passwd: true\n",
				"system_info:\n  default_user:\n    name: builder\n    groups: 'ops, wheel'\n    sudo: false\n    lock_passwd: false\n",
			},
			want: CloudInitSystem{DefaultUser: DefaultUser{Name: "builder", Gecos: "EC2 Default User", Groups: []string{"ops", "wheel"},
				Sudo: []string{}, Shell: "/bin/bash", LockPasswd: &f}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var docs []Doc
			for i, b := range tt.docs {
				docs = append(docs, parse(t, "f"+string(rune('0'+i)), b))
			}
			got := CloudInitSettings(MergeSystem(docs...))
			if !reflect.DeepEqual(got.Findings, tt.wantFindings) {
				t.Errorf("findings %q, want %q", got.Findings, tt.wantFindings)
			}
			got.Findings = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestLoadSystemOverCloudInit: /etc/cloud's settings lie under ec2init's
// own files, field by field; an /etc/cloud file that does not parse is
// no error (the boot reports it).
func TestLoadSystemOverCloudInit(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, CloudInitFile, "datasource:\n  Ec2:\n    metadata_urls: [http://cloud]\n    timeout: 7\nsystem_info:\n  default_user:\n    name: cloudy\n    shell: /bin/zsh\n")
	writeFile(t, root, CloudInitDir+"/99-broken.cfg", "a: [\n")
	sys, err := LoadSystem(root)
	if err != nil {
		t.Fatal(err)
	}
	if sys.IMDS.Endpoint != "http://cloud" || sys.IMDS.RequestTimeout.Std() != 7*time.Second || sys.DefaultUser.Name != "cloudy" {
		t.Fatalf("from /etc/cloud alone: %+v", sys)
	}
	writeFile(t, root, SystemFile, "imds:\n  endpoint: http://mine\ndefault_user:\n  name: mine\n")
	sys, err = LoadSystem(root)
	if err != nil {
		t.Fatal(err)
	}
	if sys.IMDS.Endpoint != "http://mine" || sys.IMDS.RequestTimeout.Std() != 7*time.Second ||
		sys.DefaultUser.Name != "mine" || sys.DefaultUser.Shell != "/bin/zsh" {
		t.Errorf("ec2init's config over /etc/cloud: %+v", sys)
	}
}

func TestMapGetLastWins(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\n"), &n); err != nil {
		t.Fatal(err)
	}
	m := n.Content[0]
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "a"}, &yaml.Node{Kind: yaml.ScalarNode, Value: "2"})
	if got := mapGet(m, "a"); got == nil || !strings.EqualFold(got.Value, "2") {
		t.Errorf("mapGet: %v", got)
	}
}
