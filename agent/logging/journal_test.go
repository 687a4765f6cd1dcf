package logging

import (
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestJournalCore(t *testing.T) {
	type sent struct {
		msg  string
		p    journal.Priority
		vars map[string]string
	}
	var got []sent
	core := &journalCore{LevelEnabler: zapcore.InfoLevel, send: func(msg string, p journal.Priority, vars map[string]string) error {
		got = append(got, sent{msg, p, vars})
		return nil
	}}
	log := zap.New(core).With(zap.String("instance_id", "i-1"))
	log.Debug("hidden")
	log.With(zap.String("stage", "final"), zap.String("module", "runcmd")).Warn("slow", zap.Int("attempt", 2))
	if len(got) != 1 {
		t.Fatalf("sent %d entries, want 1", len(got))
	}
	e := got[0]
	if e.p != journal.PriWarning || e.msg != "slow (attempt=2)" {
		t.Errorf("entry %q priority %v", e.msg, e.p)
	}
	for k, want := range map[string]string{"INSTANCE_ID": "i-1", "EC2INIT_STAGE": "final", "EC2INIT_MODULE": "runcmd", "EC2INIT_ATTEMPT": "2", "SYSLOG_IDENTIFIER": "ec2init"} {
		if e.vars[k] != want {
			t.Errorf("%s = %q, want %q", k, e.vars[k], want)
		}
	}
}
