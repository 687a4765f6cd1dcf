package sys

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// NetDev is a network interface as the kernel shows it in sysfs.
type NetDev struct {
	Name   string
	MAC    string
	Driver string // "" when the interface has no device (lo, veth, bridges)
}

// NetDevs lists interfaces under sysfs (normally "/sys"), so the agent can
// say which driver serves each ENI (ena on Nitro, ixgbevf on older types,
// virtio in a simulator).
func NetDevs(sysfs string) ([]NetDev, error) {
	base := filepath.Join(sysfs, "class", "net")
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []NetDev
	for _, e := range entries {
		dev := NetDev{Name: e.Name()}
		if b, err := os.ReadFile(filepath.Join(base, e.Name(), "address")); err == nil {
			dev.MAC = strings.ToLower(strings.TrimSpace(string(b)))
		}
		if target, err := os.Readlink(filepath.Join(base, e.Name(), "device", "driver")); err == nil {
			dev.Driver = filepath.Base(target)
		}
		out = append(out, dev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
