package agent

import (
	"errors"
	"io/fs"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

// BootStatus is a status record and whose it is.
type BootStatus struct {
	Status state.Status
	// Current is true when Status is this boot's; false, Status is an
	// earlier boot's (this boot's agent has not started yet), or zero when
	// no boot was ever recorded.
	Current bool
	// LockHolder is the pid holding BootLockFile, while this boot runs
	// and some process holds it (0 otherwise): a stuck or second boot can
	// be told apart.
	LockHolder int
}

// Recorded says whether any boot left a record.
func (b BootStatus) Recorded() bool { return b.Status.BootID != "" }

// ReadStatus reads the boot status under opts.Root for the boot
// opts.BootID (default: the kernel's), what `status` and `analyze` show.
//
// The /run copy first: it is this boot's (/run starts empty), updated
// after every module, and readable without root (root reads the full copy,
// others the one without messages). Then status.json, durable at stage
// ends, the record across reboots, and without one result.json, the last
// finished boot's. A record that only root may read is, for anyone else,
// none. A running status whose agent was SIGKILLed or OOM-killed is an
// error: otherwise it would say running, and `status --wait` wait, forever.
func ReadStatus(opts Options) (BootStatus, error) {
	opts = opts.withDefaults()
	store, err := state.Open(state.Options{Root: opts.Root, BootID: opts.BootID, ReadOnly: true})
	if err != nil {
		return BootStatus{}, err
	}
	root, err := sys.NewRoot(opts.Root)
	if err != nil {
		return BootStatus{}, err
	}
	st, _, err := ReadRunStatus(root)
	if err != nil || st.BootID != store.BootID() {
		st, err = store.ReadStatus()
		if errors.Is(err, fs.ErrNotExist) {
			st, err = store.ReadResult()
		}
		if errors.Is(err, fs.ErrPermission) {
			err = fs.ErrNotExist // not root, and no status of this boot yet
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return BootStatus{}, nil
	}
	if err != nil {
		return BootStatus{}, err
	}
	bs := BootStatus{Status: store.Live(st), Current: st.BootID == store.BootID()}
	if bs.Current && bs.Status.State == state.StateRunning {
		if pid, held, err := BootLockHolder(root); err == nil && held {
			bs.LockHolder = pid
		}
	}
	return bs, nil
}
