package civiews

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ec2init/ec2init/agent/sys"
)

func TestProcessAndRedactInstanceData(t *testing.T) {
	data := map[string]any{
		"ds": map[string]any{
			"meta-data": map[string]any{
				"iam":  map[string]any{"security-credentials": map[string]any{"role": map[string]any{"SecretAccessKey": "s3cr3t"}}},
				"blob": "ci-b64:aGk=",
			},
			"vendor_data": "vendor",
		},
		"merged_cfg":  map[string]any{"userdata": "x", "ok": 1.0},
		"vendor_data": map[string]any{"enabled": true}, // top level: not sensitive
		"v1":          map[string]any{"region": "us-east-1"},
	}
	p := ProcessInstanceData(data)
	wantSens := []any{"ds/meta-data/iam/security-credentials", "ds/vendor_data", "merged_cfg", "merged_cfg/userdata"}
	if got := p["sensitive_keys"]; !reflect.DeepEqual(got, wantSens) {
		t.Errorf("sensitive_keys %v, want %v", got, wantSens)
	}
	if got := p["base64_encoded_keys"]; !reflect.DeepEqual(got, []any{"ds/meta-data/blob"}) {
		t.Errorf("base64_encoded_keys %v", got)
	}
	if got := p["ds"].(map[string]any)["meta-data"].(map[string]any)["blob"]; got != "aGk=" {
		t.Errorf("ci-b64: prefix kept: %v", got)
	}
	r := RedactInstanceData(p)
	if r["merged_cfg"] != RedactedValue || r["ds"].(map[string]any)["vendor_data"] != RedactedValue ||
		r["ds"].(map[string]any)["meta-data"].(map[string]any)["iam"].(map[string]any)["security-credentials"] != RedactedValue {
		t.Errorf("not redacted: %v", r)
	}
	if r["vendor_data"].(map[string]any)["enabled"] != true || r["v1"].(map[string]any)["region"] != "us-east-1" {
		t.Errorf("redacted too much: %v", r)
	}
	if p["merged_cfg"].(map[string]any)["userdata"] != "x" {
		t.Error("redaction changed its input")
	}
}

func TestWriteInstanceData(t *testing.T) {
	dir := t.TempDir()
	root, err := sys.NewRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := New(Options{Root: root})
	for _, id := range []string{"aws-china", "aws"} {
		data := map[string]any{"v1": map[string]any{"cloud_id": id}, "merged_cfg": map[string]any{"a": "b"}, "features": map[string]any{"X": true}}
		if err := w.WriteInstanceData(data); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]os.FileMode{"run/cloud-init/instance-data.json": 0o644, "run/cloud-init/instance-data-sensitive.json": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "run/cloud-init/cloud-id")); err != nil || string(b) != "aws\n" {
		t.Errorf("cloud-id %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run/cloud-init/cloud-id-aws-china")); !os.IsNotExist(err) {
		t.Errorf("the previous cloud id's file stays: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "run/cloud-init/instance-data.json"))
	want := "{\n \"base64_encoded_keys\": [],\n \"merged_cfg\": \"redacted for non-root user\",\n \"sensitive_keys\": [\n  \"merged_cfg\"\n ],\n \"v1\": {\n  \"cloud_id\": \"aws\"\n }\n}\n"
	if string(b) != want {
		t.Errorf("instance-data.json\n%s\nwant\n%s", b, want)
	}
}
