package ssh

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/sys"
)

const (
	sshdConfig  = "/etc/ssh/sshd_config"
	sshdDropIns = "/etc/ssh/sshd_config.d"
	// DropIn is where the sshd settings go when sshd_config includes
	// sshd_config.d (Debian, Ubuntu, Amazon Linux 2023): cloud-init's own
	// file name, so an image made by either tool has one file, not two.
	DropIn = sshdDropIns + "/50-cloud-init.conf"
	// OldDropIn is the name earlier ec2init releases used; its settings
	// move into DropIn and it is removed.
	OldDropIn = sshdDropIns + "/50-ec2init.conf"
)

// sshdOption is one sshd_config line ec2init wants. A single option
// (PasswordAuthentication) replaces the value a line of that keyword
// holds; a multi option (HostCertificate) adds a line unless one with the
// same value is there.
type sshdOption struct {
	Keyword, Value string
	Multi          bool
}

// setSSHDOptions writes opts where sshd reads them first, as cloud-init's
// update_ssh_config does: into DropIn when sshd_config includes
// sshd_config.d before setting the option itself (or when there is no
// sshd_config but there is sshd_config.d, a /usr/etc vendor config),
// otherwise into sshd_config, edited in place (a new line goes before any
// Match block, where it would otherwise apply to the match alone). sshd is
// not restarted: the stage runs before it starts. It returns the files
// written ("" when nothing changed or OpenSSH is absent).
func setSSHDOptions(root *sys.Root, opts []sshdOption, log *zap.Logger) (string, error) {
	if err := migrateDropIn(root, log); err != nil {
		return "", err
	}
	if len(opts) == 0 {
		return "", nil
	}
	b, err := root.ReadFile(sshdConfig)
	mainExists := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ok, _ := root.Exists(sshdDropIns); !ok {
			log.Warn("no " + sshdConfig + ": is OpenSSH installed? sshd settings not applied")
			return "", nil
		}
	case err != nil:
		return "", err
	}
	// Each option goes where sshd reads it first.
	lines := strings.Split(string(b), "\n")
	var toDropIn, toMain []sshdOption
	for _, o := range opts {
		include, setting, _ := scanMain(lines, o.Keyword)
		if !mainExists || include >= 0 && (o.Multi || setting < 0 || setting > include) {
			toDropIn = append(toDropIn, o)
		} else {
			toMain = append(toMain, o)
		}
	}
	var written []string
	var errs []error
	if len(toDropIn) > 0 {
		changed, err := editFile(root, DropIn, toDropIn, 0o600)
		if err != nil {
			return "", err
		}
		if changed {
			written = append(written, DropIn)
		}
		for _, o := range toDropIn {
			if earlier := earlierDropIn(root, o.Keyword); earlier != "" && !o.Multi {
				errs = append(errs, fmt.Errorf("%s written to %s, but %s is read first and sets it itself", o.Keyword, DropIn, earlier))
			}
		}
	}
	if len(toMain) > 0 {
		changed, err := editFile(root, sshdConfig, toMain, 0o644)
		if err != nil {
			return strings.Join(written, ", "), err
		}
		if changed {
			written = append(written, sshdConfig)
		}
	}
	return strings.Join(written, ", "), errors.Join(errs...)
}

// scanMain finds, outside Match blocks, the first Include of sshd_config.d,
// the first line setting keyword, and the first Match line (-1 for none).
func scanMain(lines []string, keyword string) (include, setting, firstMatch int) {
	include, setting, firstMatch = -1, -1, -1
	keyword = strings.ToLower(keyword)
	for i, line := range lines {
		kw, args := directive(line)
		switch {
		case kw == "":
		case kw == "match":
			if firstMatch < 0 {
				firstMatch = i
			}
		case firstMatch >= 0:
			// Inside Match blocks, which run to the end of the file.
		case kw == "include" && include < 0 && strings.Contains(args, "sshd_config.d"):
			include = i
		case kw == keyword && setting < 0:
			setting = i
		}
	}
	return include, setting, firstMatch
}

// editFile applies opts to file's lines and writes it when that changes
// it, keeping an existing file's mode (mode is for a new one).
func editFile(root *sys.Root, file string, opts []sshdOption, mode fs.FileMode) (bool, error) {
	b, err := root.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, err
	default:
		if fi, err := root.Stat(file); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	old := string(b)
	lines := strings.Split(strings.TrimSuffix(old, "\n"), "\n")
	if old == "" {
		lines = nil
	}
	for _, o := range opts {
		lines = applyOption(lines, o)
	}
	data := strings.Join(lines, "\n") + "\n"
	if data == old {
		return false, nil
	}
	if err := root.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return false, err
	}
	return true, root.WriteFile(file, []byte(data), mode, nil)
}

// applyOption sets o in lines: the first line of a single option's keyword
// (outside Match blocks) takes the value; otherwise the line goes before
// the first Match block, or at the end.
func applyOption(lines []string, o sshdOption) []string {
	want := o.Keyword + " " + o.Value
	_, setting, firstMatch := scanMain(lines, o.Keyword)
	if o.Multi {
		for i, line := range lines {
			if firstMatch >= 0 && i >= firstMatch {
				break
			}
			if kw, args := directive(line); kw == strings.ToLower(o.Keyword) && args == o.Value {
				return lines
			}
		}
		setting = -1
	}
	switch {
	case setting >= 0:
		lines[setting] = want
	case firstMatch >= 0:
		lines = append(lines[:firstMatch], append([]string{want, ""}, lines[firstMatch:]...)...)
	default:
		lines = append(lines, want)
	}
	return lines
}

// migrateDropIn moves the settings of an earlier release's drop-in into
// DropIn (their lines first, DropIn's own after, as the names sort) and
// removes it, so sshd never reads two ec2init files.
func migrateDropIn(root *sys.Root, log *zap.Logger) error {
	old, err := root.ReadFile(OldDropIn)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(string(old), "\n") {
		if strings.HasPrefix(line, "# Written by ec2init") || strings.TrimSpace(line) == "" {
			continue
		}
		keep = append(keep, line)
	}
	cur, err := root.ReadFile(DropIn)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data := strings.Join(keep, "\n")
	if data != "" {
		data += "\n"
	}
	data += string(cur)
	if err := root.WriteFile(DropIn, []byte(data), 0o600, nil); err != nil {
		return err
	}
	if err := root.Remove(OldDropIn); err != nil {
		return err
	}
	log.Info("sshd drop-in renamed as cloud-init names it", zap.String("from", OldDropIn), zap.String("to", DropIn))
	return nil
}

// directive returns an sshd_config line's keyword, lower-cased, and the
// rest; "" for blank lines and comments. "Keyword=value" is accepted as
// sshd accepts it.
func directive(line string) (kw, args string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", ""
	}
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return strings.ToLower(line), ""
	}
	return strings.ToLower(line[:i]), strings.TrimLeft(line[i:], " \t=")
}

// earlierDropIn names a drop-in read before DropIn that sets keyword
// itself (sshd keeps the first value), or "".
func earlierDropIn(root *sys.Root, keyword string) string {
	dir, err := root.Path(sshdDropIns)
	if err != nil {
		return ""
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	sort.Strings(files)
	keyword = strings.ToLower(keyword)
	for _, f := range files {
		name := filepath.Base(f)
		if name >= filepath.Base(DropIn) {
			break
		}
		b, err := root.ReadFile(sshdDropIns + "/" + name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if kw, _ := directive(line); kw == keyword {
				return sshdDropIns + "/" + name
			}
		}
	}
	return ""
}
