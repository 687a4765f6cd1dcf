package logging

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap/zapcore"
)

// journalFields maps zap field names to journal fields, so operators can
// filter with `journalctl EC2INIT_STAGE=final` or `INSTANCE_ID=i-...`.
var journalFields = map[string]string{
	"stage":       "EC2INIT_STAGE",
	"module":      "EC2INIT_MODULE",
	"instance_id": "INSTANCE_ID",
	"frequency":   "EC2INIT_FREQUENCY",
}

// UnderSystemd reports whether stderr is connected to the journal, as it
// is when a unit runs ec2init: logs then go to journald natively, with
// fields, instead of as text lines.
func UnderSystemd() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok && journal.Enabled()
}

// journalCore writes entries to journald with structured fields.
type journalCore struct {
	zapcore.LevelEnabler
	fields []zapcore.Field
	send   func(msg string, p journal.Priority, vars map[string]string) error
}

func newJournalCore(level zapcore.LevelEnabler) zapcore.Core {
	return &journalCore{LevelEnabler: level, send: journal.Send}
}

func (c *journalCore) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	return &clone
}

func (c *journalCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *journalCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fields...) {
		f.AddTo(enc)
	}
	vars := map[string]string{"SYSLOG_IDENTIFIER": "ec2init"}
	var extra []string
	for k, v := range enc.Fields {
		if name, ok := journalFields[k]; ok {
			vars[name] = fmt.Sprint(v)
			continue
		}
		vars["EC2INIT_"+journalName(k)] = fmt.Sprint(v)
		extra = append(extra, fmt.Sprintf("%s=%v", k, v))
	}
	msg := e.Message
	if len(extra) > 0 {
		// journalctl shows MESSAGE only: keep the details readable there.
		sort.Strings(extra)
		msg += " (" + strings.Join(extra, " ") + ")"
	}
	return c.send(msg, priority(e.Level), vars)
}

func (c *journalCore) Sync() error { return nil }

func priority(l zapcore.Level) journal.Priority {
	switch {
	case l >= zapcore.DPanicLevel:
		return journal.PriCrit
	case l >= zapcore.ErrorLevel:
		return journal.PriErr
	case l >= zapcore.WarnLevel:
		return journal.PriWarning
	case l >= zapcore.InfoLevel:
		return journal.PriInfo
	}
	return journal.PriDebug
}

// journalName makes a journal field name: upper case letters, digits and
// underscores.
func journalName(k string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(k) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
