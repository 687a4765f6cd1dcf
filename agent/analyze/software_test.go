package analyze

import (
	"testing"

	"github.com/ec2init/ec2init/agent/state"
)

// TestSoftware: the boot's time is its stages' (a deferred stage did no
// work); fetching is the longest fetch (items are fetched in parallel);
// a record from a boot where the software module did not run costs this
// boot nothing.
func TestSoftware(t *testing.T) {
	st := sample()
	st.Stages[2].Modules = append(st.Stages[2].Modules, state.ModuleResult{Name: "software", Outcome: "ok", DurationMS: 80})
	items := []SoftwareItem{
		{Name: "runtime", Policy: "bake", Action: "verified", InstallMS: 0.2},
		{Name: "app", Policy: "boot", Action: "installed", FetchedBytes: 1 << 20, FetchMS: 60, InstallMS: 5},
		{Name: "lib", Policy: "boot", Action: "installed", FetchedBytes: 1 << 10, FetchMS: 40, InstallMS: 1},
	}
	c := Software(st, items)
	if c.BootMS != 700 || c.FetchMS != 60 || c.WithoutFetchMS != 640 || len(c.Items) != 3 {
		t.Errorf("got boot %v fetch %v without %v, %d items; want 700, 60, 640, 3", c.BootMS, c.FetchMS, c.WithoutFetchMS, len(c.Items))
	}

	c = Software(sample(), items) // the software module did not run
	if c.FetchMS != 0 || c.WithoutFetchMS != 700 || c.Items[1].FetchedBytes != 0 || c.Items[1].Action != "skipped" {
		t.Errorf("a boot without the software module: %+v", c)
	}
}
