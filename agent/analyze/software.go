package analyze

import "github.com/ec2init/ec2init/agent/state"

// SoftwareItem is one software item as the boot left it (the software
// module's record, software.json): what it did and what it cost.
type SoftwareItem struct {
	Name   string `json:"name"`
	Policy string `json:"policy"`
	Action string `json:"action"`
	// FetchedBytes is what this run downloaded for it: 0 for a baked
	// item, one already installed, or an artifact the cache held.
	FetchedBytes int64   `json:"fetched_bytes"`
	FetchMS      float64 `json:"fetch_ms"`
	InstallMS    float64 `json:"install_ms"`
}

// SoftwareCost is the Hybrid AMI's trade made visible: each item, and the
// boot's time with and without its fetching.
type SoftwareCost struct {
	Items []SoftwareItem `json:"items"`
	// BootMS is ec2init's work in this boot: the sum of its stages (the
	// gaps between stage processes are other units' time).
	BootMS float64 `json:"boot_ms"`
	// FetchMS is the wall time spent fetching (the items are fetched
	// together, in parallel: the longest fetch); WithoutFetchMS is BootMS
	// without it, what the boot would have cost with every item baked.
	FetchMS        float64 `json:"fetch_ms"`
	WithoutFetchMS float64 `json:"without_fetch_ms"`
}

// Software is the cost of the software items of boot st. items is the
// module's last record; it counts for this boot only when the software
// module ran in it (otherwise its record is an earlier boot's, and this
// boot fetched nothing).
func Software(st state.Status, items []SoftwareItem) SoftwareCost {
	c := SoftwareCost{Items: []SoftwareItem{}}
	ran := false
	for _, s := range st.Stages {
		if s.Deferred {
			continue
		}
		c.BootMS += s.DurationMS
		for _, m := range s.Modules {
			if m.Name == "software" && m.Outcome != string(state.OutcomeSkipped) {
				ran = true
			}
		}
	}
	for _, it := range items {
		if !ran {
			it.FetchedBytes, it.FetchMS, it.InstallMS = 0, 0, 0
			if it.Action != "failed" {
				it.Action = "skipped"
			}
		}
		c.FetchMS = max(c.FetchMS, it.FetchMS)
		c.Items = append(c.Items, it)
	}
	c.WithoutFetchMS = max(c.BootMS-c.FetchMS, 0)
	return c
}
