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
	sshdConfig = "/etc/ssh/sshd_config"
	// DropIn is where ssh_pwauth goes when sshd_config includes
	// sshd_config.d (Debian, Ubuntu, Amazon Linux 2023).
	DropIn = "/etc/ssh/sshd_config.d/50-ec2init.conf"
)

// setPasswordAuth sets sshd's PasswordAuthentication to value ("yes" or
// "no"). sshd takes the first value it reads, so: a drop-in when
// sshd_config includes sshd_config.d before setting it itself, otherwise
// sshd_config's own line, edited in place (or added before any Match
// block). sshd is not restarted: the stage runs before it starts.
func setPasswordAuth(root *sys.Root, value string, log *zap.Logger) error {
	b, err := root.ReadFile(sshdConfig)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no " + sshdConfig + ": is OpenSSH installed? ssh_pwauth not applied")
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	include, setting, firstMatch := -1, -1, -1
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
		case kw == "passwordauthentication" && setting < 0:
			setting = i
		}
	}
	want := "PasswordAuthentication " + value
	if include >= 0 && (setting < 0 || setting > include) {
		data := "# Written by ec2init from the cloud-config's ssh_pwauth.\n" + want + "\n"
		if err := root.WriteFile(DropIn, []byte(data), 0o600, nil); err != nil {
			return err
		}
		log.Info("password authentication set", zap.String("value", value), zap.String("file", DropIn))
		if earlier := earlierDropIn(root); earlier != "" {
			return fmt.Errorf("written to %s, but %s is read first and sets PasswordAuthentication itself", DropIn, earlier)
		}
		return nil
	}
	switch {
	case setting >= 0:
		lines[setting] = want
	case firstMatch >= 0:
		lines = append(lines[:firstMatch], append([]string{want, ""}, lines[firstMatch:]...)...)
	default:
		if n := len(lines); n > 0 && lines[n-1] == "" {
			lines = append(lines[:n-1], want, "")
		} else {
			lines = append(lines, want, "")
		}
	}
	fi, err := root.Stat(sshdConfig)
	if err != nil {
		return err
	}
	if err := root.WriteFile(sshdConfig, []byte(strings.Join(lines, "\n")), fi.Mode().Perm(), nil); err != nil {
		return err
	}
	log.Info("password authentication set", zap.String("value", value), zap.String("file", sshdConfig))
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

// earlierDropIn names a drop-in read before ours that sets
// PasswordAuthentication itself (sshd keeps the first value), or "".
func earlierDropIn(root *sys.Root) string {
	dirHost := filepath.Dir(DropIn)
	dir, err := root.Path(dirHost)
	if err != nil {
		return ""
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	sort.Strings(files)
	for _, f := range files {
		name := filepath.Base(f)
		if name >= filepath.Base(DropIn) {
			break
		}
		b, err := root.ReadFile(dirHost + "/" + name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if kw, _ := directive(line); kw == "passwordauthentication" {
				return dirHost + "/" + name
			}
		}
	}
	return ""
}
