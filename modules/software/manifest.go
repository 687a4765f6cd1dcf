package software

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// ManifestFile is where `ec2init bake` records what it installed.
const ManifestFile = state.StateDir + "/" + state.BakeManifestName

// ManifestVersion is the format of bake.json.
const ManifestVersion = 1

// Kinds of installed paths.
const (
	KindFile = "file"
	KindTree = "tree"
)

// Manifest is bake.json: what the image was baked with.
type Manifest struct {
	Version        int            `json:"version"`
	BakedAt        time.Time      `json:"baked_at"`
	EC2InitVersion string         `json:"ec2init_version"`
	Items          []ManifestItem `json:"items"`
}

// ManifestItem is one baked item.
type ManifestItem struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Source is the URL without credentials or query string.
	Source    string          `json:"source,omitempty"`
	Algo      string          `json:"algo,omitempty"`
	Sum       string          `json:"sum,omitempty"`
	Size      int64           `json:"size,omitempty"`
	Installed []InstalledPath `json:"installed,omitempty"`
	Package   *PackageInfo    `json:"package,omitempty"`
	// Version and ResolvedURL are what version_from resolved at the bake
	// (the URL without credentials or query string).
	Version     string `json:"version,omitempty"`
	ResolvedURL string `json:"resolved_url,omitempty"`
	// Signer names the key whose signature verified the artifact.
	Signer string `json:"signer,omitempty"`
}

// InstalledPath is a file or a tree an item installed, as it was then.
type InstalledPath struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Size is the file's, or the sum of the tree's regular files.
	Size int64 `json:"size"`
	// MTime is the file's (trees carry theirs in StatSHA256).
	MTime time.Time `json:"mtime,omitzero"`
	// SHA256 is the file's content, or the tree's (see hashTree).
	SHA256 string `json:"sha256"`
	// StatSHA256 is the tree's shape: every entry's path, type, mode, size
	// and mtime, without reading content (the quick check).
	StatSHA256 string `json:"stat_sha256,omitempty"`
	Files      int    `json:"files,omitempty"`
}

// PackageInfo is a package an item installed.
type PackageInfo struct {
	Manager string `json:"manager,omitempty"` // deb or rpm, when read from the file
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Find returns the baked item called name.
func (m *Manifest) Find(name string) *ManifestItem {
	if m == nil {
		return nil
	}
	for i := range m.Items {
		if m.Items[i].Name == name {
			return &m.Items[i]
		}
	}
	return nil
}

// ReadManifest reads bake.json under root; nil and no error when the
// image was never baked.
func ReadManifest(root *sys.Root) (*Manifest, error) {
	data, err := root.ReadFile(ManifestFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bake manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("bake manifest %s: %w", ManifestFile, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("bake manifest %s: format version %d, this ec2init reads %d", ManifestFile, m.Version, ManifestVersion)
	}
	return &m, nil
}

// WriteManifest writes bake.json under root atomically, 0600 (the state
// directory is created 0700 when missing).
func WriteManifest(root *sys.Root, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("bake manifest: %w", err)
	}
	if !exists(root, state.StateDir) {
		if err := root.MkdirAll(state.StateDir, 0o700); err != nil {
			return fmt.Errorf("bake manifest: %w", err)
		}
	}
	if err := root.WriteFile(ManifestFile, append(data, '\n'), 0o600, nil); err != nil {
		return fmt.Errorf("bake manifest: %w", err)
	}
	return nil
}

// treeSums describes a tree.
type treeSums struct {
	stat, content string
	size          int64
	files         int
}

// hashTree hashes the tree at dir (a real path), in lexical order, links
// not followed. The stat hash covers each entry's relative path, type,
// permission bits, and for files size and mtime (directory mtimes change
// with any file created in them, so they are left out); the content hash
// covers path, type, permission bits, file content and link targets. With
// content false only the stat hash is computed: no file is read.
func hashTree(dir string, content bool) (treeSums, error) {
	var t treeSums
	st, ct := sha256.New(), sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		switch {
		case fi.Mode().IsRegular():
			t.files++
			t.size += fi.Size()
			fmt.Fprintf(st, "f\x00%s\x00%o\x00%d\x00%d\n", rel, perm, fi.Size(), fi.ModTime().UnixNano())
			if content {
				sum, err := fileSHA256(p)
				if err != nil {
					return err
				}
				fmt.Fprintf(ct, "f\x00%s\x00%o\x00%s\n", rel, perm, sum)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(st, "l\x00%s\x00%s\n", rel, target)
			fmt.Fprintf(ct, "l\x00%s\x00%s\n", rel, target)
		case fi.IsDir():
			fmt.Fprintf(st, "d\x00%s\x00%o\n", rel, perm)
			fmt.Fprintf(ct, "d\x00%s\x00%o\n", rel, perm)
		default:
			fmt.Fprintf(st, "o\x00%s\x00%s\n", rel, fi.Mode().Type())
			fmt.Fprintf(ct, "o\x00%s\x00%s\n", rel, fi.Mode().Type())
		}
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("hashing %s: %w", dir, err)
	}
	t.stat = hexSum(st)
	if content {
		t.content = hexSum(ct)
	}
	return t, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hexSum(h), nil
}

// ErrChanged is wrapped by the error for a baked item that is no longer
// what was baked.
var ErrChanged = errors.New("changed since the bake")

// verifyBaked checks a baked item against its manifest entry: the
// configured checksum against the baked one, then each installed path
// (size and mtime, or the tree's stat hash; with verify: full the content
// hashed again), and an installed package's version in the package
// database (with full, the package manager's own file check).
func (m Software) verifyBaked(ctx context.Context, env *modules.Env, it *Item, mi *ManifestItem) error {
	if algo, sum := it.checksumOf(); sum != "" && (algo != mi.Algo || sum != mi.Sum) {
		return fmt.Errorf("%w: the configured %s is %s…, the image was baked with %s:%s… (bake the image again, or set policy: boot)",
			ErrChanged, algo, short(sum), mi.Algo, short(mi.Sum))
	}
	if it.Install.Type != mi.Type {
		return fmt.Errorf("%w: baked as type %s, configured as %s", ErrChanged, mi.Type, it.Install.Type)
	}
	full := it.Verify == VerifyFull
	var problems []string
	for _, p := range mi.Installed {
		if err := verifyPath(env.Root, p, full); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if mi.Package != nil && (it.Install.Type == TypeDeb || it.Install.Type == TypeRPM) {
		if err := verifyPackage(ctx, env, mi.Package, full); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrChanged, strings.Join(problems, "; "))
	}
	return nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// verifyPath checks one installed path; the error says what differs.
func verifyPath(root *sys.Root, p InstalledPath, full bool) error {
	real, err := root.Path(p.Path)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(real)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing", p.Path)
	}
	if err != nil {
		return err
	}
	switch p.Kind {
	case KindFile:
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is no longer a regular file", p.Path)
		}
		if fi.Size() != p.Size {
			return fmt.Errorf("%s: size %d, baked %d", p.Path, fi.Size(), p.Size)
		}
		if !fi.ModTime().Equal(p.MTime) {
			return fmt.Errorf("%s: modified %s, baked %s", p.Path, fi.ModTime().UTC().Format(time.RFC3339Nano), p.MTime.UTC().Format(time.RFC3339Nano))
		}
		if full {
			sum, err := fileSHA256(real)
			if err != nil {
				return err
			}
			if sum != p.SHA256 {
				return fmt.Errorf("%s: content differs (sha256 %s…, baked %s…)", p.Path, short(sum), short(p.SHA256))
			}
		}
	case KindTree:
		if !fi.IsDir() {
			return fmt.Errorf("%s is no longer a directory", p.Path)
		}
		t, err := hashTree(real, full)
		if err != nil {
			return err
		}
		if t.stat != p.StatSHA256 {
			return fmt.Errorf("%s: files added, removed, resized or modified (%d files, %d bytes; baked %d files, %d bytes)", p.Path, t.files, t.size, p.Files, p.Size)
		}
		if full && t.content != p.SHA256 {
			return fmt.Errorf("%s: content differs", p.Path)
		}
	default:
		return fmt.Errorf("%s: unknown kind %q in the manifest", p.Path, p.Kind)
	}
	return nil
}

// verifyPackage asks the package database whether the baked version is
// still installed and, with full, whether its files are intact.
func verifyPackage(ctx context.Context, env *modules.Env, pkg *PackageInfo, full bool) error {
	mode := modeOf(env)
	argv := installedVersionArgv(pkg.Manager, mode, env.Root.Prefix(), pkg.Name)
	out, res, err := output(ctx, env, "verify "+pkg.Name, argv)
	if err != nil {
		return err
	}
	got := strings.TrimSpace(out)
	if res.ExitCode != 0 {
		return fmt.Errorf("package %s is not installed (%s: %s)", pkg.Name, describe(argv), exitStatus(res))
	}
	if got != pkg.Version {
		return fmt.Errorf("package %s: version %s installed, baked %s", pkg.Name, got, pkg.Version)
	}
	if !full {
		return nil
	}
	argv = verifyPackageArgv(pkg.Manager, mode, env.Root.Prefix(), pkg.Name)
	out, res, err = output(ctx, env, "verify "+pkg.Name, argv)
	if err != nil {
		return err
	}
	// dpkg --verify lists the changed files but exits 0; rpm -V exits 1.
	if res.ExitCode != 0 || strings.TrimSpace(out) != "" {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		sort.Strings(lines)
		return fmt.Errorf("package %s: files changed: %s", pkg.Name, strings.Join(lines, ", "))
	}
	return nil
}
