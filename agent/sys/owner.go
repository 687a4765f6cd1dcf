package sys

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Owner is a file's numeric owner. -1 in either field leaves that id as it
// is (as chown(2) does).
type Owner struct {
	UID, GID int
}

func (o Owner) String() string { return fmt.Sprintf("%d:%d", o.UID, o.GID) }

// Where LookupOwner reads names; inside the root, never the agent's host.
const (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// maxID is the largest valid uid or gid: (uid_t)-1 means "unchanged".
const maxID = 1<<32 - 2

// LookupOwner resolves an owner spec as chown(1) reads it, with the names
// taken from the root's /etc/passwd and /etc/group (not the host's, and not
// through NSS):
//
//	"user:group"  user's uid, group's gid
//	"user"        user's uid and primary gid (-1 if user is a bare number
//	              with no passwd entry)
//	"user:"       user's uid and primary gid
//	":group"      uid -1 (unchanged), group's gid
//
// Each name may be a decimal id instead; a name that exists wins over the
// same digits read as an id. The error names what is missing and where it
// was looked for.
func (r *Root) LookupOwner(spec string) (Owner, error) {
	fail := func(err error) (Owner, error) {
		return Owner{}, fmt.Errorf("owner %q: %w", spec, err)
	}
	userPart, groupPart, hasColon := strings.Cut(spec, ":")
	if userPart == "" && groupPart == "" {
		return fail(errors.New("empty owner"))
	}
	o := Owner{UID: -1, GID: -1}
	var userGID = -1
	if userPart != "" {
		uid, gid, err := r.lookupName(passwdFile, userPart, "user")
		if err != nil {
			return fail(err)
		}
		o.UID, userGID = uid, gid
	}
	switch {
	case groupPart != "":
		gid, _, err := r.lookupName(groupFile, groupPart, "group")
		if err != nil {
			return fail(err)
		}
		o.GID = gid
	case userPart != "":
		// "user" and "user:" both take the user's login group.
		o.GID = userGID
		if hasColon && userGID < 0 {
			return fail(fmt.Errorf("user %q has no entry in %s to give its login group", userPart, passwdFile))
		}
	}
	return o, nil
}

// lookupName finds name in the root's passwd or group file and returns its
// id (field 3) and, for passwd, the primary gid (field 4; -1 otherwise or
// when the name is a bare id with no entry).
func (r *Root) lookupName(file, name, kind string) (id, gid int, err error) {
	numeric, numErr := parseID(name)
	data, readErr := r.ReadFile(file)
	if readErr != nil {
		if numErr == nil && errors.Is(readErr, fs.ErrNotExist) {
			return numeric, -1, nil
		}
		return 0, 0, fmt.Errorf("%s %q: %w", kind, name, readErr)
	}
	var byID *dbEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		e, ok := parseDBLine(sc.Text())
		if !ok {
			continue
		}
		if e.name == name {
			return e.id, e.gid, nil
		}
		if numErr == nil && e.id == numeric && byID == nil {
			byID = &e
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("%s %q: read %s: %w", kind, name, file, err)
	}
	if numErr == nil {
		if byID != nil {
			return numeric, byID.gid, nil
		}
		return numeric, -1, nil
	}
	where := file
	if !r.IsHost() {
		where += " under " + r.prefix
	}
	return 0, 0, fmt.Errorf("%s %q not found in %s", kind, name, where)
}

type dbEntry struct {
	name    string
	id, gid int
}

// parseDBLine reads one line of passwd(5) ("name:pw:uid:gid:...") or
// group(5) ("name:pw:gid:members"); comments, blank lines, NIS compat lines
// ("+", "-") and malformed lines are skipped.
func parseDBLine(line string) (dbEntry, bool) {
	if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
		return dbEntry{}, false
	}
	f := strings.Split(line, ":")
	if len(f) < 3 || f[0] == "" {
		return dbEntry{}, false
	}
	id, err := parseID(f[2])
	if err != nil {
		return dbEntry{}, false
	}
	e := dbEntry{name: f[0], id: id, gid: -1}
	if len(f) >= 7 { // passwd: the fourth field is the primary gid
		if g, err := parseID(f[3]); err == nil {
			e.gid = g
		}
	}
	return e, true
}

func parseID(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a numeric id", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxID {
		return 0, fmt.Errorf("id %s out of range", s)
	}
	return int(n), nil
}
