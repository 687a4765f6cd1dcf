package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantJSON            bool
		wantDebug           bool
		wantErr             string
	}{
		{name: "non-terminal defaults to json", wantJSON: true},
		{name: "console", format: "console"},
		{name: "debug level", level: "debug", format: "json", wantJSON: true, wantDebug: true},
		{name: "bad level", level: "loud", wantErr: `log level "loud"`},
		{name: "bad format", format: "xml", wantErr: `log format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(Options{Level: tt.level, Format: tt.format, Out: &buf})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("dbg")
			log.Info("hello")
			out := buf.String()
			if got := strings.Contains(out, "dbg"); got != tt.wantDebug {
				t.Errorf("debug logged = %v, want %v: %q", got, tt.wantDebug, out)
			}
			last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
			var v map[string]any
			isJSON := json.Unmarshal([]byte(last), &v) == nil
			if isJSON != tt.wantJSON {
				t.Errorf("json = %v, want %v: %q", isJSON, tt.wantJSON, last)
			}
		})
	}
}

func TestFileGetsJSON(t *testing.T) {
	var console, file bytes.Buffer
	log, err := New(Options{Format: "console", Out: &console, File: &file})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("to both")
	var v map[string]any
	if err := json.Unmarshal(file.Bytes(), &v); err != nil || v["msg"] != "to both" {
		t.Errorf("file got %q", file.String())
	}
	if !strings.Contains(console.String(), "to both") {
		t.Errorf("console got %q", console.String())
	}
}
