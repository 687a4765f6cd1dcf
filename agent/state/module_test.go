package state_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

type item struct {
	Name   string `json:"name"`
	Action string `json:"action"`
}

func TestModuleStoreItems(t *testing.T) {
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := state.NewModuleStates(root, "i-0abc").For("software")
	if st.Path() != "/var/lib/ec2init/instances/i-0abc/software.json" {
		t.Errorf("path %s", st.Path())
	}
	if got, err := state.LoadItems[item](st); got != nil || err != nil {
		t.Fatalf("before a save: %v %v", got, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := state.SaveItems(st, []item{{"a", "installed"}}, at); err != nil {
		t.Fatal(err)
	}
	got, err := state.LoadItems[item](st)
	if err != nil || len(got) != 1 || got[0] != (item{"a", "installed"}) {
		t.Fatalf("read back %v %v", got, err)
	}
	data, _ := root.ReadFile(st.Path())
	want := "{\n  \"updated\": \"2026-01-02T03:04:05Z\",\n  \"items\": [\n    {\n      \"name\": \"a\",\n      \"action\": \"installed\"\n    }\n  ]\n}\n"
	if string(data) != want {
		t.Errorf("on disk:\n%s", data)
	}
	for p, perm := range map[string]string{st.Path(): "-rw-------", "/var/lib/ec2init/instances/i-0abc": "drwx------"} {
		if fi, err := root.Stat(p); err != nil || fi.Mode().String() != perm {
			t.Errorf("%s: %v %v, want %s", p, fi.Mode(), err, perm)
		}
	}
}

func TestModuleStoreRefusesBadNames(t *testing.T) {
	root, err := sys.NewRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, module string }{{"../x", "software"}, {"i-0abc", "../../etc/x"}, {"", "software"}} {
		err := state.NewModuleStates(root, c.id).For(c.module).Save(1)
		if !errors.Is(err, state.ErrInvalidName) {
			t.Errorf("%q/%q: %v", c.id, c.module, err)
		}
	}
	if err := state.NewModuleStates(root, "i-0abc").For("x").Save(1); err != nil {
		t.Fatal(err)
	}
	root.WriteFile("/var/lib/ec2init/instances/i-0abc/x.json", []byte("{"), 0o600, nil)
	if _, err := state.LoadItems[item](state.NewModuleStates(root, "i-0abc").For("x")); err == nil || !strings.Contains(err.Error(), "x.json") {
		t.Errorf("corrupt document: %v", err)
	}
}
