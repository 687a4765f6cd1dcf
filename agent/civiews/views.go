package civiews

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
)

// Files of the views (host paths).
const (
	StatusFile      = DataDir + "/status.json"
	ResultFile      = DataDir + "/result.json"
	RunStatusLink   = RunDir + "/status.json"
	RunResultLink   = RunDir + "/result.json"
	RunInstanceID   = RunDir + "/.instance-id"
	InstanceIDFile  = DataDir + "/instance-id"
	PreviousIDFile  = DataDir + "/previous-instance-id"
	BootFinished    = "boot-finished"
	UserDataTxt     = "user-data.txt"
	NoPreviousID    = "NO_PREVIOUS_INSTANCE_ID"
	DatasourceLocal = "DataSourceEc2Local"
	DatasourceNet   = "DataSourceEc2"
)

// cloud-init's stage names (status.json's v1 keys) for ec2init's stages, in
// order.
var stageKeys = []struct{ ec2init, cloudInit string }{
	{"local", "init-local"},
	{"network", "init"},
	{"config", "modules-config"},
	{"final", "modules-final"},
}

// CloudInitStage is cloud-init's name for the ec2init stage ("" if none).
func CloudInitStage(ec2initStage string) string {
	for _, k := range stageKeys {
		if k.ec2init == ec2initStage {
			return k.cloudInit
		}
	}
	return ""
}

// Instance is what the instance views need of the current boot.
type Instance struct {
	ID string
	// PreviousID is the id the disk recorded before this boot ("" on the
	// first boot ever).
	PreviousID string
	// UserData reads the raw user data; an error matching fs.ErrNotExist
	// means not fetched yet (the view is written later).
	UserData func() ([]byte, error)
	// Data builds the instance data (see WriteInstanceData), nil when
	// the instance's facts are not known yet. Written once per Writer.
	Data func() (map[string]any, error)
	// Combined is the cloud-config the boot acts on (nil: not known
	// yet), written to CombinedConfigFile whenever it changed.
	Combined func() (map[string]any, error)
}

// Options configures a Writer.
type Options struct {
	Root    *sys.Root
	Now     func() time.Time
	Version string
	// Uptime is the host's uptime at Now(): it maps the status's times to
	// cloud-init's seconds since boot. Zero reads /proc/uptime.
	Uptime time.Duration
}

// Writer writes the views of one process's boot stages. It remembers what
// it wrote, so calling Update after every module costs a write only when
// a view changed. It is not safe for concurrent use.
type Writer struct {
	root     *sys.Root
	now      func() time.Time
	version  string
	bootTime time.Time

	lastStatus   []byte
	resultState  int // 0 unknown, 1 written, 2 removed
	instanceDone bool
	userDataDone bool
	dataDone     bool
	lastCombined []byte
}

// New returns a Writer.
func New(opts Options) *Writer {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	up := opts.Uptime
	if up == 0 {
		up = hostUptime()
	}
	return &Writer{root: opts.Root, now: now, version: opts.Version, bootTime: now().Add(-up)}
}

func hostUptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	s, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// Update writes the views for st, the boot's status as anyone may read it
// (the caller passes it redacted: status.json is world-readable, as
// cloud-init's is), and in.
func (w *Writer) Update(st state.Status, in Instance) error {
	var errs []error
	if in.ID != "" {
		if err := w.writeInstance(in); err != nil {
			errs = append(errs, err)
		}
	}
	if in.Data != nil && !w.dataDone {
		data, err := in.Data()
		if err == nil {
			err = w.WriteInstanceData(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("instance data: %w", err))
		} else {
			w.dataDone = true
		}
	}
	if in.Combined != nil {
		cfg, err := in.Combined()
		if err == nil {
			err = w.writeCombined(cfg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("combined cloud-config: %w", err))
		}
	}
	if err := w.writeStatus(st, in.ID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (w *Writer) writeStatus(st state.Status, id string) error {
	v1 := StatusV1(st, w.bootTime)
	data, err := MarshalJSON(map[string]any{"v1": v1})
	if err != nil {
		return err
	}
	if !bytes.Equal(data, w.lastStatus) {
		if err := w.writeLinked(StatusFile, RunStatusLink, data); err != nil {
			return err
		}
		w.lastStatus = data
	}
	finished := finalFinished(st)
	switch {
	case finished && w.resultState != 1:
		res, err := MarshalJSON(map[string]any{"v1": ResultV1(v1)})
		if err != nil {
			return err
		}
		if err := w.writeLinked(ResultFile, RunResultLink, res); err != nil {
			return err
		}
		if id != "" {
			if err := w.writeBootFinished(id); err != nil {
				return err
			}
		}
		w.resultState = 1
	case !finished && w.resultState != 2:
		// A new boot: cloud-init removes the last boot's result and
		// boot-finished when it starts.
		for _, p := range []string{RunResultLink, ResultFile} {
			if err := w.root.Remove(p); err != nil {
				return err
			}
		}
		if id != "" {
			if err := w.root.Remove(path.Join(InstancesDir, id, BootFinished)); err != nil {
				return err
			}
		}
		w.resultState = 2
	}
	return nil
}

func finalFinished(st state.Status) bool {
	if st.FinishedAt.IsZero() {
		return false
	}
	for _, sr := range st.Stages {
		if sr.Name == "final" && !sr.End.IsZero() {
			return true
		}
	}
	return false
}

// writeLinked writes the file and the relative link to it under /run, as
// cloud-init does (../../var/lib/cloud/data/status.json).
func (w *Writer) writeLinked(file, link string, data []byte) error {
	if err := w.root.WriteFile(file, data, 0o644, nil); err != nil {
		return err
	}
	rel := strings.Repeat("../", strings.Count(path.Dir(link), "/")) + strings.TrimPrefix(file, "/")
	return w.symlink(link, rel)
}

func (w *Writer) writeInstance(in Instance) error {
	dir := path.Join(InstancesDir, in.ID)
	if strings.Contains(in.ID, "/") || in.ID == "." || in.ID == ".." {
		return fmt.Errorf("instance id %q cannot name a directory", in.ID)
	}
	if !w.instanceDone {
		if err := w.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := w.symlink(InstanceLink, dir); err != nil {
			return err
		}
		prev := in.PreviousID
		if prev == "" {
			prev = NoPreviousID
		}
		for _, f := range []struct{ p, v string }{
			{InstanceIDFile, in.ID}, {PreviousIDFile, prev}, {RunInstanceID, in.ID},
		} {
			if err := w.root.WriteFileIfChanged(f.p, []byte(f.v+"\n"), 0o644, nil); err != nil {
				return err
			}
		}
		w.instanceDone = true
	}
	if !w.userDataDone && in.UserData != nil {
		raw, err := in.UserData()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not fetched yet
		}
		if err != nil {
			return fmt.Errorf("user data: %w", err)
		}
		if err := w.root.WriteFileIfChanged(path.Join(dir, UserDataTxt), raw, 0o600, nil); err != nil {
			return err
		}
		w.userDataDone = true
	}
	return nil
}

// writeBootFinished writes cloud-init's line: uptime, RFC 2822 time,
// version.
func (w *Writer) writeBootFinished(id string) error {
	now := w.now()
	line := fmt.Sprintf("%.2f - %s - v. %s\n", now.Sub(w.bootTime).Seconds(),
		now.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"), w.version)
	return w.root.WriteFile(path.Join(InstancesDir, id, BootFinished), []byte(line), 0o644, nil)
}

// symlink points link at target, replacing what link was atomically (a
// new link renamed over it); an existing link to target is kept.
func (w *Writer) symlink(link, target string) error {
	dir, name := path.Split(link)
	if err := w.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	realDir, err := w.root.Path(dir)
	if err != nil {
		return err
	}
	full := realDir + "/" + name
	if have, err := os.Readlink(full); err == nil && have == target {
		return nil
	}
	tmp := fmt.Sprintf("%s/.%s.tmp-%d", realDir, name, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, full); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}

// StageStatus is one stage in status.json's v1.
// Fields are in cloud-init's (sorted) key order.
type StageStatus struct {
	Errors            []string            `json:"errors"`
	Finished          *PyFloat            `json:"finished"`
	RecoverableErrors map[string][]string `json:"recoverable_errors"`
	Start             *PyFloat            `json:"start"`
}

// StatusV1 is status.json's v1 object for st: cloud-init's four stages,
// its datasource string and the stage running now (nil when none runs).
// bootTime maps st's times to seconds since boot. A failed module is an
// error of its stage, as in cloud-init; a boot-level error (user data,
// metadata) one of init's.
func StatusV1(st state.Status, bootTime time.Time) map[string]any {
	v1 := map[string]any{"datasource": nil, "stage": nil}
	stages := map[string]*StageStatus{}
	for _, k := range stageKeys {
		stages[k.cloudInit] = &StageStatus{Errors: []string{}, RecoverableErrors: map[string][]string{}}
	}
	up := func(t time.Time) *PyFloat {
		f := PyFloat(math.Round(t.Sub(bootTime).Seconds()*100) / 100)
		return &f
	}
	failed := map[string]bool{}
	for _, sr := range st.Stages {
		key := CloudInitStage(sr.Name)
		if key == "" {
			continue
		}
		s := stages[key]
		if s.Start == nil {
			s.Start = up(sr.Start)
		}
		s.Finished = nil
		if !sr.End.IsZero() {
			s.Finished = up(sr.End)
		} else if st.State == state.StateRunning {
			v1["stage"] = key
		}
		for _, m := range sr.Modules {
			switch state.Outcome(m.Outcome) {
			case state.OutcomeFailed:
				failed[m.Name] = true
				s.Errors = append(s.Errors, fmt.Sprintf("('%s', Error('%s'))", m.Name, m.Error))
			case state.OutcomeInterrupted:
				failed[m.Name] = true
				s.RecoverableErrors["WARNING"] = append(s.RecoverableErrors["WARNING"], m.Name+": interrupted by a crash in an earlier boot; not run again")
			}
		}
	}
	// What is not a module's (user data, cloud-config, metadata) goes to
	// init, where cloud-init reads the user data, whatever stage is on.
	s := stages["init"]
	for _, msg := range st.Errors {
		if !failed[messageName(msg)] {
			s.Errors = append(s.Errors, msg)
		}
	}
	for _, msg := range st.Degraded {
		if !failed[messageName(msg)] {
			s.RecoverableErrors["WARNING"] = append(s.RecoverableErrors["WARNING"], msg)
		}
	}
	if len(st.Errors) > 0 && s.Start == nil && !st.FinishedAt.IsZero() {
		s.Start, s.Finished = up(st.StartedAt), up(st.FinishedAt)
	}
	for k, v := range stages {
		v1[k] = v
	}
	if st.InstanceID != "" {
		v1["datasource"] = DatasourceNet
		for _, sr := range st.Stages {
			if sr.Name == "local" {
				if !sr.Deferred {
					v1["datasource"] = DatasourceLocal
				}
				break
			}
		}
	}
	return v1
}

// ResultV1 is result.json's v1 object: the datasource and every stage's
// errors, in stage order.
func ResultV1(statusV1 map[string]any) map[string]any {
	errs := []string{}
	for _, k := range stageKeys {
		if s, ok := statusV1[k.cloudInit].(*StageStatus); ok {
			errs = append(errs, s.Errors...)
		}
	}
	return map[string]any{"datasource": statusV1["datasource"], "errors": errs}
}

// messageName is a status message's leading name, before ": ".
func messageName(msg string) string {
	name, _, _ := strings.Cut(msg, ": ")
	return name
}

// PyFloat is a float printed as Python's json module prints one (5.0,
// not 5).
type PyFloat float64

// MarshalJSON implements json.Marshaler.
func (f PyFloat) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'f', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return []byte(s), nil
}

// MarshalJSON encodes v as cloud-init's atomic_helper.write_json does:
// indent 1, sorted keys, ASCII only (\uXXXX escapes), a final newline.
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, r := range buf.String() {
		if r < 0x80 {
			out.WriteRune(r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&out, `\u%04x`, u)
		}
	}
	return out.Bytes(), nil
}
