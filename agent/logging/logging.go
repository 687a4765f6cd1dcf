// Package logging builds ec2init's zap logger: a human console format when
// a person is watching (stderr is a terminal), JSON lines otherwise, so logs
// read well in a shell and parse well in a pipeline or the journal.
package logging

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options selects the logger's level, format and destination.
type Options struct {
	// Level is debug, info, warn or error ("" is info).
	Level string
	// Format is "console", "json", "journal" or "" (the journal when run
	// by systemd, console on a terminal, else JSON).
	Format string
	// Out is where logs go; nil is stderr.
	Out io.Writer
	// File, when set, also receives every entry as JSON (the agent's
	// /var/log/ec2init.log), whatever the console format.
	File io.Writer
}

// New returns a logger for opts.
func New(opts Options) (*zap.Logger, error) {
	level := zapcore.InfoLevel
	if opts.Level != "" {
		if err := level.UnmarshalText([]byte(opts.Level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", opts.Level)
		}
	}
	out := opts.Out
	if out == nil {
		out = os.Stderr
	}
	format := opts.Format
	if format == "" {
		switch {
		case opts.Out == nil && UnderSystemd():
			format = "journal"
		case isTerminal(out):
			format = "console"
		default:
			format = "json"
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	var core zapcore.Core
	switch format {
	case "journal":
		core = newJournalCore(level)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		encCfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(encCfg)
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log format %q: want console, json or journal", format)
	}
	if core == nil {
		core = zapcore.NewCore(enc, zapcore.AddSync(out), level)
	}
	if opts.File != nil {
		fileEnc := zap.NewProductionEncoderConfig()
		fileEnc.EncodeTime = zapcore.ISO8601TimeEncoder
		core = zapcore.NewTee(core, zapcore.NewCore(zapcore.NewJSONEncoder(fileEnc), zapcore.AddSync(opts.File), level))
	}
	return zap.New(core), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
