package sys

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestNetDevs(t *testing.T) {
	sysfs := t.TempDir()
	mk := func(name, mac, driver string) {
		dir := filepath.Join(sysfs, "class", "net", name)
		if err := os.MkdirAll(filepath.Join(dir, "device"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "address"), []byte(mac+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if driver != "" {
			if err := os.Symlink("../../../../bus/pci/drivers/"+driver, filepath.Join(dir, "device", "driver")); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("ens5", "0E:1A:2B:3C:4D:5E", "ena")
	mk("lo", "00:00:00:00:00:00", "")
	got, err := NetDevs(sysfs)
	if err != nil {
		t.Fatal(err)
	}
	want := []NetDev{{Name: "ens5", MAC: "0e:1a:2b:3c:4d:5e", Driver: "ena"}, {Name: "lo", MAC: "00:00:00:00:00:00"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if devs, err := NetDevs(filepath.Join(sysfs, "absent")); err != nil || devs != nil {
		t.Errorf("absent sysfs: %v %v", devs, err)
	}
}
