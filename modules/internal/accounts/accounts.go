// Package accounts reads and updates the accounts of the image under a
// root: passwd and group entries, authorized_keys files and the
// distribution's default user. The users and ssh modules share it.
package accounts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// HasAccounts reports whether the root holds an operating system's account
// files: under a bare --root (a test, the demo) there is no user to add.
func HasAccounts(root *sys.Root) bool {
	ok, err := root.Exists("/etc/passwd")
	return err == nil && ok
}

// Account is one passwd(5) entry in the root's /etc/passwd.
type Account struct {
	Name     string
	UID, GID int
	Home     string
	Shell    string
}

// LookupAccount finds name in the root's /etc/passwd (not the host's, not
// through NSS: the accounts ec2init creates live in files). found is false,
// with no error, when there is no such entry or no passwd file.
func LookupAccount(root *sys.Root, name string) (acct Account, found bool, err error) {
	err = scanDB(root, "/etc/passwd", func(f []string) bool {
		if len(f) < 7 || f[0] != name {
			return true
		}
		uid, uerr := strconv.Atoi(f[2])
		gid, gerr := strconv.Atoi(f[3])
		if uerr != nil || gerr != nil {
			return true
		}
		acct = Account{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}
		found = true
		return false
	})
	return acct, found, err
}

// Group is one group(5) entry.
type Group struct {
	Name    string
	Members []string
}

// LookupGroup finds name in the root's /etc/group.
func LookupGroup(root *sys.Root, name string) (g Group, found bool, err error) {
	err = scanDB(root, "/etc/group", func(f []string) bool {
		if len(f) < 4 || f[0] != name {
			return true
		}
		g = Group{Name: f[0]}
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.Members = append(g.Members, m)
			}
		}
		found = true
		return false
	})
	return g, found, err
}

// GroupsOf lists the supplementary groups name is a member of.
func GroupsOf(root *sys.Root, name string) (map[string]bool, error) {
	out := map[string]bool{}
	err := scanDB(root, "/etc/group", func(f []string) bool {
		if len(f) >= 4 {
			for _, m := range strings.Split(f[3], ",") {
				if strings.TrimSpace(m) == name {
					out[f[0]] = true
				}
			}
		}
		return true
	})
	return out, err
}

// scanDB calls fn with the fields of each entry of a colon-separated
// database until fn returns false. Comments, NIS compat lines and blank
// lines are skipped; a missing file has no entries.
func scanDB(root *sys.Root, file string, fn func([]string) bool) error {
	data, err := root.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		if !fn(strings.Split(line, ":")) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	return nil
}

// ShadowPassword returns name's password field in the root's /etc/shadow
// ("!" locked without a password, "!$6$..." locked, "" none). found is
// false when there is no such entry. The value is a secret: never log it.
func ShadowPassword(root *sys.Root, name string) (field string, found bool, err error) {
	err = scanDB(root, "/etc/shadow", func(f []string) bool {
		if len(f) < 2 || f[0] != name {
			return true
		}
		field, found = f[1], true
		return false
	})
	return field, found, err
}
