package agent

import (
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/state"
)

// newCloudInitViews is the writer of cloud-init's files (civiews) for a
// boot, nil when opts turn them off.
func newCloudInitViews(opts Options, b *booter) *civiews.Writer {
	if opts.NoCloudInitViews {
		return nil
	}
	// Views of ec2init's records, rewritten at every stage: under /run they
	// need no fsync, and those under /var/lib/cloud are made durable with
	// the stage's records (state.Store.Sync).
	return civiews.New(civiews.Options{Root: b.root.NoSync(), Now: opts.Now, Version: opts.Version})
}

// saveCloudInitViews updates cloud-init's files from the status just
// saved: the world-readable form only, as cloud-init's are world-readable
// (user-data.txt excepted, 0600). ec2init's own records stay the truth; a
// failure here is logged, never the boot's.
func (b *booter) saveCloudInitViews() {
	if b.views == nil {
		return
	}
	var in civiews.Instance
	if b.trans.InstanceID != "" { // decided in this process: the ids are right
		in = civiews.Instance{ID: b.trans.InstanceID, PreviousID: b.trans.PreviousInstanceID,
			UserData: func() ([]byte, error) { return b.store.ReadInstanceFile(state.UserDataRaw) }}
	}
	if b.instance != nil && !b.instanceDataWritten() {
		in.Data = b.instanceData
	}
	if b.userData != nil {
		in.Combined = b.combinedConfig
	}
	if err := b.views.Update(PublicStatus(b.status), in); err != nil {
		b.log.Warn("write cloud-init views", zap.Error(err))
	}
}

// instanceDataWritten: an earlier stage of this boot wrote the instance
// data, which stays the same for the whole boot (its facts, the image's
// config and the system are read once per boot), so a later stage does not
// build it again (it reads the 2 MiB C library for its platform string).
func (b *booter) instanceDataWritten() bool {
	if !b.continued {
		return false
	}
	ok, err := b.root.Exists(civiews.InstanceDataSensitiveFile)
	return err == nil && ok
}
