package mounts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/disk"
)

// DefaultSwapFile is swap.filename's default, as cloud-init's.
const DefaultSwapFile = "/swap.img"

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// swapConfig is the swap key decoded. size 0 means no swap file.
type swapConfig struct {
	filename string
	auto     bool
	size     int64 // bytes, when not auto
	maxsize  int64 // bytes; 0: none given
}

func parseSwap(n *yaml.Node, where string) (swapConfig, error) {
	s := swapConfig{filename: DefaultSwapFile}
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return s, nil
	}
	if n.Kind != yaml.MappingNode {
		return s, fmt.Errorf("%s: expected a mapping with filename, size, maxsize", where)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		switch k {
		case "filename":
			if v.Kind != yaml.ScalarNode || !strings.HasPrefix(v.Value, "/") {
				return s, fmt.Errorf("%s.filename: expected an absolute path", where)
			}
			// The name becomes fs_spec of the swap line: refused before
			// any file is made if it would not stay one fstab field.
			if err := checkField(0, v.Value); err != nil {
				return s, fmt.Errorf("%s.filename: %w", where, fieldError(0, v.Value, err))
			}
			s.filename = path.Clean(v.Value)
		case "size":
			if v.Kind == yaml.ScalarNode && strings.EqualFold(v.Value, "auto") {
				s.auto = true
				continue
			}
			b, err := parseSize(v)
			if err != nil {
				return s, fmt.Errorf("%s.size: %w (or auto)", where, err)
			}
			s.size = b
		case "maxsize":
			b, err := parseSize(v)
			if err != nil {
				return s, fmt.Errorf("%s.maxsize: %w", where, err)
			}
			s.maxsize = b
		}
	}
	return s, nil
}

// parseSize reads a size as cloud-init does: bytes as an integer, or a
// number with one of the units B, K, M, G, T (powers of 1024; a trailing B
// after the unit, as in 2GB, is allowed).
func parseSize(n *yaml.Node) (int64, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, errors.New("expected bytes or a size such as 512M or 2G")
	}
	s := strings.TrimSpace(n.Value)
	if b, err := strconv.ParseInt(s, 10, 64); err == nil && b >= 0 {
		return b, nil
	}
	u := strings.ToUpper(s)
	if len(u) > 2 && strings.HasSuffix(u, "B") && strings.ContainsAny(u[len(u)-2:len(u)-1], "KMGT") {
		u = u[:len(u)-1]
	}
	mult := map[byte]int64{'B': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	if len(u) < 2 || mult[u[len(u)-1]] == 0 {
		return 0, fmt.Errorf("%q: expected bytes or a size such as 512M or 2G", n.Value)
	}
	f, err := strconv.ParseFloat(u[:len(u)-1], 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f*float64(mult[u[len(u)-1]]) > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q: expected bytes or a size such as 512M or 2G", n.Value)
	}
	return int64(f * float64(mult[u[len(u)-1]])), nil
}

// SuggestedSwap is cloud-init's rule for size: auto, kept so that a config
// written for it gets the same swap. RAM below 4 GiB: as much swap as RAM;
// below 16 GiB: 4 GiB; above: the square root of RAM in GiB, rounded, in
// GiB. The result is capped by maxsize, which defaults to the lesser of
// twice RAM and a quarter of the filesystem's free space (and a maxsize
// given is capped at 90% of the free space).
func SuggestedSwap(mem, free, maxsize int64) int64 {
	switch {
	case maxsize == 0:
		maxsize = min(free/4, 2*mem)
	case float64(maxsize) > 0.9*float64(free):
		maxsize = int64(0.9 * float64(free))
	}
	var want int64
	switch {
	case mem < 4*gib:
		want = mem
	case mem < 16*gib:
		want = 4 * gib
	default:
		want = int64(math.Round(math.Sqrt(float64(mem)/float64(gib)))) * gib
	}
	return min(want, maxsize)
}

// setupSwap makes the swap file and returns its path, or "" when there is
// to be none. A file already in use as swap is kept as it is.
func setupSwap(ctx context.Context, v disk.View, s swapConfig) (string, error) {
	env := v.Env()
	log := env.Logger().With(zap.String("module", "mounts"))
	if !s.auto && s.size == 0 {
		return "", nil
	}
	root := env.Root
	exists, err := root.Exists(s.filename)
	if err != nil {
		return "", err
	}
	if exists {
		swaps, err := root.ReadFile(disk.SwapsFile)
		if errors.Is(err, fs.ErrNotExist) {
			// Nothing tells whether it is in use: safer to keep it.
			log.Info("mounts: swap file exists and "+disk.SwapsFile+" cannot tell whether it is in use; kept", zap.String("file", s.filename))
			return s.filename, nil
		}
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(swaps), "\n") {
			if f := strings.Fields(line); len(f) > 0 && disk.Unescape(f[0]) == s.filename {
				log.Info("mounts: swap file already in use", zap.String("file", s.filename))
				return s.filename, nil
			}
		}
	}
	size := s.size
	dir := path.Dir(s.filename)
	if err := mkdirMissing(root, dir); err != nil {
		return "", err
	}
	if s.auto {
		mem, err := memTotal(root)
		if err != nil {
			log.Info("mounts: swap size auto needs the RAM size; no swap file", zap.Error(err))
			return "", nil
		}
		full, err := root.Path(dir)
		if err != nil {
			return "", err
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(full, &st); err != nil {
			return "", fmt.Errorf("free space for the swap file in %s: %w", dir, err)
		}
		size = SuggestedSwap(mem, int64(st.Bfree)*st.Frsize, s.maxsize)
	}
	mb := size / mib
	if mb == 0 {
		log.Info("mounts: swap size is below 1 MiB; no swap file", zap.Int64("bytes", size))
		return "", nil
	}
	if err := makeSwapFile(ctx, v, s.filename, mb); err != nil {
		root.Remove(s.filename)
		return "", err
	}
	log.Info("mounts: swap file created", zap.String("file", s.filename), zap.Int64("mib", mb))
	return s.filename, nil
}

// makeSwapFile writes a swap file of mb MiB: fallocate, or dd where
// fallocate cannot make a swap file (xfs before Linux 4.18) or fails;
// btrfs files are made no-copy-on-write first, which swap requires.
func makeSwapFile(ctx context.Context, v disk.View, file string, mb int64) error {
	env := v.Env()
	// An empty 0600 file first, so the data is never readable by others.
	if err := env.Root.WriteFile(file, nil, 0o600, nil); err != nil {
		return err
	}
	hp, err := v.HostPath(file)
	if err != nil {
		return err
	}
	fstype := ""
	if ms, err := v.Mounts(); err == nil {
		if m, ok := disk.MountOf(ms, path.Dir(file)); ok {
			fstype = m.FSType
		}
	}
	if fstype == "btrfs" {
		if err := run(ctx, env, "chattr", "+C", hp); err != nil {
			return err
		}
	}
	dd := []string{"dd", "if=/dev/zero", "of=" + hp, "bs=1M", "count=" + strconv.FormatInt(mb, 10)}
	if fstype == "xfs" && kernelBefore(4, 18) {
		if err := run(ctx, env, dd...); err != nil {
			return err
		}
	} else if err := run(ctx, env, "fallocate", "-l", strconv.FormatInt(mb, 10)+"M", hp); err != nil {
		env.Logger().Info("mounts: fallocate could not make the swap file; writing it with dd", zap.Error(err))
		if err := run(ctx, env, dd...); err != nil {
			return err
		}
	}
	return run(ctx, env, "mkswap", hp)
}

// run runs argv, its output to the console; a non-zero exit is an error.
func run(ctx context.Context, env *modules.Env, argv ...string) error {
	var out bytes.Buffer
	res, err := env.Runner.Run(ctx, sys.Cmd{Name: "mounts: " + argv[0], Argv: argv, Output: &out})
	env.ConsoleWriter().Write(out.Bytes())
	if err != nil {
		return err
	}
	if res.ExitCode != 0 || res.Signal != "" {
		return fmt.Errorf("%s exited %d: %s", argv[0], res.ExitCode, disk.FirstLine(out.String()))
	}
	return nil
}

// memTotal is MemTotal from the root's /proc/meminfo, in bytes.
func memTotal(root *sys.Root) (int64, error) {
	b, err := root.ReadFile(disk.MeminfoFile)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("%s: no MemTotal", disk.MeminfoFile)
}

// kernelBefore reports whether the running kernel is older than
// major.minor.
func kernelBefore(major, minor int) bool {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return false
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	parts := strings.SplitN(b.String(), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// mkdirMissing creates dir (0755) unless it exists; an existing
// directory's mode is left alone.
func mkdirMissing(root *sys.Root, dir string) error {
	ok, err := root.Exists(dir)
	if err != nil || ok {
		return err
	}
	return root.MkdirAll(dir, 0o755)
}
