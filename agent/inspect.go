package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/userdata"
)

// PartInfo describes one user-data part without its content.
type PartInfo struct {
	Index    int    `json:"index"`
	Filename string `json:"filename"`
	// Name is the part's unique name: its script file and run record.
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Kind        string `json:"kind"`
	Size        int    `json:"size"`
	// Stage and Frequency say when the part runs; empty when it does not
	// run by itself (cloud-config is read by modules).
	Stage     string `json:"stage,omitempty"`
	Frequency string `json:"frequency,omitempty"`
	// Module is the name of its run record; Ran says whether it has run
	// for this instance.
	Module string `json:"module,omitempty"`
	Ran    bool   `json:"ran"`
}

// UserDataReport is what `ec2init userdata show` prints.
type UserDataReport struct {
	InstanceID string     `json:"instance_id"`
	Size       int        `json:"size"`
	Parts      []PartInfo `json:"parts"`
	Warnings   []string   `json:"warnings"`
}

// ShowUserData parses the user data stored for the current instance (as
// the last boot fetched it) and says what each part is and does: where
// opts.Registry's plan runs it (the script slots where cloud-init runs
// them when nil).
func ShowUserData(opts Options) (*UserDataReport, error) {
	opts = opts.withDefaults()
	store, err := state.Open(state.Options{Root: opts.Root, BootID: opts.BootID, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	id, err := store.RecordedInstanceID()
	if err != nil || id == "" {
		return nil, fmt.Errorf("no instance recorded yet: run `ec2init boot` first")
	}
	if err := store.UseInstance(id); err != nil {
		return nil, err
	}
	raw, err := store.ReadInstanceFile(state.UserDataRaw)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no user data stored for instance %s", id)
	}
	if err != nil {
		return nil, err
	}
	res, err := userdata.Parse(raw, userdata.Options{})
	if err != nil {
		return nil, err
	}
	res = forLaunchIndex(store, res)
	rep := &UserDataReport{InstanceID: id, Size: len(raw), Parts: []PartInfo{}, Warnings: []string{}}
	for _, w := range res.Warnings {
		rep.Warnings = append(rep.Warnings, w.String())
	}
	reg := scriptsRegistry(opts.Registry)
	for _, p := range res.Parts {
		info := PartInfo{Index: p.Index, Filename: p.Filename, Name: p.Name, ContentType: p.ContentType, Kind: p.Kind.String(), Size: len(p.Body)}
		if slot, freq, ok := partSlot(reg, p.Kind); ok {
			info.Stage, info.Frequency = string(slot.Stage()), string(freq)
			info.Module = partModule(slot.Name(), p)
			if freq != state.Always {
				run, _, err := store.ShouldRun(info.Module, freq)
				info.Ran = err == nil && !run
			}
		}
		rep.Parts = append(rep.Parts, info)
	}
	return rep, nil
}

// forLaunchIndex keeps the parts the boot kept for this instance (by the
// ami-launch-index in its cached facts), so part indexes and names are the
// ones the boot used.
func forLaunchIndex(store *state.Store, res *userdata.Result) *userdata.Result {
	data, err := store.ReadInstanceFile(instanceCache)
	if err != nil {
		return res
	}
	var in imds.Instance
	if json.Unmarshal(data, &in) != nil {
		return res
	}
	if idx, err := strconv.Atoi(in.AMILaunchIndex); err == nil {
		return res.ForLaunchIndex(idx)
	}
	return res
}

// RunPart runs one script part of the stored user data again, on
// purpose, whatever its semaphore says, and records the run under the
// name opts.Registry's plan gives it (see ShowUserData).
func RunPart(ctx context.Context, opts Options, filename string) (state.ModuleResult, error) {
	opts = opts.withDefaults()
	b, release, err := recordedBooter(ctx, opts)
	if err != nil {
		return state.ModuleResult{}, err
	}
	defer release()
	defer b.sync("run-script") // as a stage's end: the run's records durable
	store := b.store
	raw, err := store.ReadInstanceFile(state.UserDataRaw)
	if err != nil {
		return state.ModuleResult{}, err
	}
	res, err := userdata.Parse(raw, userdata.Options{})
	if err != nil {
		return state.ModuleResult{}, err
	}
	res = forLaunchIndex(store, res)
	for _, p := range res.Parts {
		if p.Name != filename && p.Filename != filename && strconv.Itoa(p.Index) != filename {
			continue
		}
		slot, freq, ok := partSlot(scriptsRegistry(opts.Registry), p.Kind)
		if !ok {
			return state.ModuleResult{}, fmt.Errorf("part %q is %s, not a script", filename, p.Kind)
		}
		w := b.partWork(slot.Name(), p, freq)
		// Clear the semaphore so the gate lets this deliberate run through.
		if err := store.ClearDone(w.name, freq); err != nil {
			return state.ModuleResult{}, err
		}
		saved := b.opts.RerunInterrupted
		b.opts.RerunInterrupted = true
		r := b.runGated(ctx, b.log, w)
		b.opts.RerunInterrupted = saved
		return r, nil
	}
	return state.ModuleResult{}, fmt.Errorf("no part named %q in the user data (see `ec2init userdata show`)", filename)
}
