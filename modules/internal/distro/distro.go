// Package distro tells which Linux distribution an image under a root is,
// from its os-release file, so modules pick the right paths and tools
// (/etc/chrony/chrony.conf on Debian, /etc/chrony.conf on Amazon Linux).
package distro

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
)

// Distro is what os-release says of the image. IDs are lower case.
type Distro struct {
	ID        string   // "amzn", "debian", "ubuntu", "rhel", ...
	IDLike    []string // "fedora"; "centos rhel fedora"; "debian"
	VersionID string   // "2023", "12", "22.04"
}

// Detect reads the os-release of the image under root. An image without
// one is the zero Distro (neither Debian- nor Red Hat-like), not an error;
// the error is for a file that exists but cannot be read.
func Detect(root *sys.Root) (Distro, error) {
	// The locations in the order os-release(5) says to read them.
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := root.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Distro{}, fmt.Errorf("distro: %w", err)
		}
		return Parse(b), nil
	}
	return Distro{}, nil
}

// Parse reads os-release content: KEY=value lines, values optionally
// quoted with shell quoting.
func Parse(data []byte) Distro {
	var d Distro
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = unquote(strings.TrimSpace(v))
		switch strings.TrimSpace(k) {
		case "ID":
			d.ID = strings.ToLower(v)
		case "ID_LIKE":
			d.IDLike = strings.Fields(strings.ToLower(v))
		case "VERSION_ID":
			d.VersionID = v
		}
	}
	return d
}

// unquote undoes the shell quoting os-release(5) allows: '...' verbatim,
// "..." with backslash escapes of $ " \ and `.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("$\"\\`", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

// Is reports whether the distribution is, or is like, one of ids.
func (d Distro) Is(ids ...string) bool {
	for _, id := range ids {
		if d.ID == id || slices.Contains(d.IDLike, id) {
			return true
		}
	}
	return false
}

// IsDebianLike is Debian, Ubuntu and their derivatives.
func (d Distro) IsDebianLike() bool { return d.Is("debian", "ubuntu") }

// IsRedHatLike is Amazon Linux, RHEL, Fedora, CentOS and their
// derivatives (Rocky, Alma, ... say ID_LIKE="rhel ...").
func (d Distro) IsRedHatLike() bool { return d.Is("amzn", "rhel", "fedora", "centos") }

// IsAmazonLinux is Amazon Linux (2 or 2023).
func (d Distro) IsAmazonLinux() bool { return d.ID == "amzn" }

// String names the distribution for logs: "debian 12", "unknown".
func (d Distro) String() string {
	if d.ID == "" {
		return "unknown"
	}
	if d.VersionID == "" {
		return d.ID
	}
	return d.ID + " " + d.VersionID
}
