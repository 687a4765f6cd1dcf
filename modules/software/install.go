package software

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// installed is what an install left on disk, for the bake manifest and the
// status record.
type installed struct {
	paths []InstalledPath
	pkg   *PackageInfo
}

// install puts the fetched artifact (art, a real path; "" for the package
// types) in place as it.Install says. record asks for what the bake
// manifest needs (tree hashes, the package's name and version).
func (m Software) install(ctx context.Context, env *modules.Env, it *Item, art, artSHA256 string, record bool) (installed, error) {
	switch it.Install.Type {
	case TypeFile:
		p, err := installFile(env.Root, it, art, artSHA256, record)
		return installed{paths: []InstalledPath{p}}, err
	case TypeTarball:
		p, err := installTarball(env.Root, it, art, record)
		if err != nil {
			return installed{}, err
		}
		return installed{paths: []InstalledPath{p}}, nil
	case TypeDeb, TypeRPM:
		return m.installPackageFile(ctx, env, it, art, record)
	case TypePackage:
		return installed{pkg: &PackageInfo{Name: it.Install.Name, Version: it.Install.Version}}, m.installByName(ctx, env, it)
	case TypePackageUpgrade:
		return installed{}, m.upgrade(ctx, env, it)
	}
	return installed{}, fmt.Errorf("install type %q not supported", it.Install.Type)
}

// installFile copies art to dest atomically (a temporary file next to it,
// renamed over it): the previous file stays whole until the new one is
// complete, with its mode and owner already set. The record's SHA256 is
// artSHA256 (the verified artifact's, when its algorithm is sha256), else
// computed while copying when record asks for it; a plain copy lets the
// kernel copy the data (copy_file_range).
//
// Symlinks among dest's parents are followed inside the root (a merged-/usr
// alias such as /bin -> usr/bin is common and harmless: the rename replaces
// one file, it deletes no tree), but a symlink at dest itself is not: the
// rename replaces the link with the file and leaves its target untouched,
// so a link planted at dest cannot turn the install into a write to
// /etc/shadow. The temporary file and the rename are relative to the parent
// directory held open.
func installFile(root *sys.Root, it *Item, art, artSHA256 string, record bool) (InstalledPath, error) {
	dest := path.Clean(it.Install.Dest)
	fail := func(err error) (InstalledPath, error) {
		return InstalledPath{}, fmt.Errorf("install %s: %w", dest, err)
	}
	owner, err := resolveOwner(root, it.Install.Owner)
	if err != nil {
		return fail(err)
	}
	d, err := openDest(root, dest, true)
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	if fi, err := d.parent.Lstat(d.base); err == nil && fi.IsDir() {
		return fail(errors.New("is a directory"))
	}
	if err := d.checkDest(); err != nil {
		return fail(err)
	}
	mode := os.FileMode(it.Install.Mode)
	if mode == 0 {
		mode = 0o644
	}
	src, err := os.Open(art)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	tmpName, tmp, err := d.createTemp("." + d.base + ".ec2init-")
	if err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			d.parent.Remove(tmpName)
		}
	}()
	var n int64
	sum := artSHA256
	if sum == "" && record {
		h := sha256.New()
		n, err = io.Copy(io.MultiWriter(tmp, h), src)
		sum = hex.EncodeToString(h.Sum(nil))
	} else {
		n, err = io.Copy(tmp, src)
	}
	if err != nil {
		return fail(err)
	}
	// Owner before mode: chown(2) clears setuid and setgid.
	if owner != nil {
		if err := tmp.Chown(owner.UID, owner.GID); err != nil {
			return fail(fmt.Errorf("chown to %s: %w", it.Install.Owner, err))
		}
	}
	if err := tmp.Chmod(goMode(mode)); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	// rename(2) never follows a symlink at the new name: a link at dest is
	// replaced, its target left alone.
	if err := d.parent.Rename(tmpName, d.base); err != nil {
		return fail(err)
	}
	done = true
	if err := d.dir.Sync(); err != nil {
		return fail(err)
	}
	return InstalledPath{Path: dest, Kind: KindFile, Size: n, MTime: fi.ModTime().UTC(), SHA256: sum}, nil
}

// createTemp creates a new 0600 file prefix+random in d's parent.
func (d *destDir) createTemp(prefix string) (string, *os.File, error) {
	for range 10 {
		name := prefix + randomSuffix()
		f, err := d.parent.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return name, f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", nil, fmt.Errorf("temporary file in %s: %w", path.Dir(d.dest), err)
		}
	}
	return "", nil, fmt.Errorf("temporary file in %s: no unused name", path.Dir(d.dest))
}

// resolveOwner reads "user:group" from the root's account files; ""
// means the agent's own (root at boot), with nothing to chown.
func resolveOwner(root *sys.Root, spec string) (*sys.Owner, error) {
	if spec == "" {
		return nil, nil
	}
	o, err := root.LookupOwner(spec)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// goMode turns the Unix octal setuid/setgid/sticky bits into Go's.
func goMode(perm os.FileMode) os.FileMode {
	m := perm & fs.ModePerm
	if perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pmMode is how a package tool reaches the root: it is the running
// system's, the runner chroots into it, or the tool's own option points at
// it (dpkg --root, rpm --root) while it runs on the host.
type pmMode int

const (
	pmHost pmMode = iota
	pmChroot
	pmOption
)

func modeOf(env *modules.Env) pmMode {
	switch {
	case env.Root.IsHost():
		return pmHost
	case env.Runner != nil && env.Runner.Chroot:
		return pmChroot
	}
	return pmOption
}

// seenPath is the artifact's path as the command sees it: inside the root
// when chrooted.
func seenPath(env *modules.Env, art string) (string, error) {
	if modeOf(env) != pmChroot {
		return art, nil
	}
	rel, err := filepath.Rel(env.Root.Prefix(), art)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is outside the root %s: chrooted, the package tool cannot read it (keep cache_dir inside the root)", art, env.Root.Prefix())
	}
	return "/" + rel, nil
}

// packageFileArgv is the command installing a local .deb or .rpm. dpkg -i
// and rpm -U install the file alone: its dependencies must be installed
// already (a package item before it in the list).
func packageFileArgv(typ string, mode pmMode, prefix, file string) []string {
	switch typ {
	case TypeDeb:
		argv := []string{"dpkg"}
		if mode == pmOption {
			argv = append(argv, "--root="+prefix)
		}
		// Keep the image's changed config files, never ask.
		return append(argv, "--force-confdef", "--force-confold", "-i", file)
	default:
		argv := []string{"rpm"}
		if mode == pmOption {
			argv = append(argv, "--root", prefix)
		}
		// --replacepkgs: the same version again (a re-bake) is not an error.
		return append(argv, "-U", "--replacepkgs", file)
	}
}

// packageInfoArgv reads the package's name and version from the file.
func packageInfoArgv(typ, file string) []string {
	if typ == TypeDeb {
		return []string{"dpkg-deb", "--show", "--showformat=${Package}\t${Version}\n", file}
	}
	return []string{"rpm", "-qp", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n", file}
}

// installedVersionArgv asks the package database for name's version.
func installedVersionArgv(manager string, mode pmMode, prefix, name string) []string {
	if manager == TypeDeb {
		argv := []string{"dpkg-query"}
		if mode == pmOption {
			argv = append(argv, "--admindir="+filepath.Join(prefix, "var/lib/dpkg"))
		}
		return append(argv, "-W", "--showformat=${Version}", name)
	}
	argv := []string{"rpm"}
	if mode == pmOption {
		argv = append(argv, "--root", prefix)
	}
	return append(argv, "-q", "--qf", "%{VERSION}-%{RELEASE}", name)
}

// verifyPackageArgv checks the installed files of name against the
// package database's checksums.
func verifyPackageArgv(manager string, mode pmMode, prefix, name string) []string {
	if manager == TypeDeb {
		argv := []string{"dpkg"}
		if mode == pmOption {
			argv = append(argv, "--root="+prefix)
		}
		return append(argv, "--verify", name)
	}
	argv := []string{"rpm"}
	if mode == pmOption {
		argv = append(argv, "--root", prefix)
	}
	return append(argv, "-V", name)
}

// output runs argv and returns its output, which does not go to the console.
func output(ctx context.Context, env *modules.Env, name string, argv []string) (string, sys.Result, error) {
	var buf bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: name, Argv: argv, Output: &buf})
	if err != nil {
		return "", res, fmt.Errorf("%s: %w", argv[0], err)
	}
	return buf.String(), res, nil
}

// describe names a command for messages: the tool and its arguments
// without options.
func describe(argv []string) string {
	words := []string{argv[0]}
	for _, a := range argv[1:] {
		if !strings.HasPrefix(a, "-") {
			words = append(words, a)
		}
	}
	return strings.Join(words, " ")
}

func exitStatus(res sys.Result) string {
	if res.Signal != "" {
		return "killed by signal " + res.Signal
	}
	if res.TimedOut {
		return "timed out"
	}
	return fmt.Sprintf("exit status %d", res.ExitCode)
}

var debEnv = map[string]string{"DEBIAN_FRONTEND": "noninteractive"}

// installPackageFile installs a fetched .deb or .rpm with dpkg or rpm.
func (m Software) installPackageFile(ctx context.Context, env *modules.Env, it *Item, art string, record bool) (installed, error) {
	file, err := seenPath(env, art)
	if err != nil {
		return installed{}, err
	}
	mode := modeOf(env)
	var info *PackageInfo
	if record {
		argv := packageInfoArgv(it.Install.Type, file)
		out, res, err := output(ctx, env, it.Name+": read package", argv)
		if err != nil {
			return installed{}, err
		}
		if res.ExitCode != 0 {
			return installed{}, fmt.Errorf("%s: %s: not a %s package? %s", describe(argv), exitStatus(res), it.Install.Type, firstLine(out))
		}
		name, version, ok := strings.Cut(strings.TrimSpace(out), "\t")
		if !ok || name == "" {
			return installed{}, fmt.Errorf("%s: unexpected output %q", describe(argv), firstLine(out))
		}
		info = &PackageInfo{Manager: it.Install.Type, Name: name, Version: version}
	}
	argv := packageFileArgv(it.Install.Type, mode, env.Root.Prefix(), file)
	if _, err := m.runPackageTool(ctx, env, it.Name+": install "+it.Install.Type, argv, debEnv); err != nil {
		return installed{}, err
	}
	return installed{pkg: info}, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func exists(root *sys.Root, p string) bool {
	ok, err := root.Exists(p)
	return ok && err == nil
}
