package disksetup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// part is one partition of a layout: a share of the disk in percent and a
// partition type ("" for the default, Linux filesystem).
type part struct {
	percent int
	typ     string
}

// gptTypes maps the codes cloud-config uses (MBR's two hex digits or
// sgdisk's four) to GPT partition type GUIDs, for the types one puts on a
// data disk.
var gptTypes = map[string]string{
	"83": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
	"82": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
	"8e": "E6D6D379-F507-44C2-A23C-238F2A3DF928", "8e00": "E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
	"fd": "A19D880F-05FC-4D3B-A006-743F0F84911E", "fd00": "A19D880F-05FC-4D3B-A006-743F0F84911E", // Linux RAID
	"ef": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "ef00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system
	"8302": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", // Linux /home
}

// mbrTypes maps sgdisk's four-digit codes to MBR's.
var mbrTypes = map[string]string{"8300": "83", "8200": "82", "8e00": "8e", "fd00": "fd", "ef00": "ef"}

// partType spells a layout's partition type for sfdisk's table: a GUID
// for gpt, two hex digits for mbr.
func partType(table, code string) (string, error) {
	c := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(code, "0x"), "0X"))
	if table == "gpt" {
		if g, ok := gptTypes[c]; ok {
			return g, nil
		}
		if isGUID(code) {
			return strings.ToUpper(code), nil
		}
		return "", fmt.Errorf("partition type %q: not one ec2init knows for gpt (83, 82, 8e, fd, ef, 8300, 8200, 8e00, fd00, ef00, 8302 or a type GUID)", code)
	}
	if m, ok := mbrTypes[c]; ok {
		return m, nil
	}
	if n, err := strconv.ParseUint(c, 16, 8); err == nil && n > 0 && len(c) <= 2 {
		return c, nil
	}
	return "", fmt.Errorf("partition type %q: expected an MBR type of one or two hex digits such as 83 or 82", code)
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// Script is the sfdisk input for a layout on a disk of size bytes: each
// partition's share in whole MiB, the last one taking what remains when
// the shares add up to 100% (the table's own space and alignment are
// taken from it, not from the others).
func Script(table string, parts []part, size int64) (string, error) {
	label := map[string]string{"gpt": "gpt", "mbr": "dos"}[table]
	if label == "" {
		return "", fmt.Errorf("table_type %q: expected mbr or gpt", table)
	}
	if len(parts) == 0 {
		return "", errors.New("layout: no partitions")
	}
	if table == "mbr" && len(parts) > 4 {
		return "", fmt.Errorf("layout: %d partitions do not fit an MBR table (4 at most)", len(parts))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "label: %s\n", label)
	total := 0
	for i, p := range parts {
		if p.percent < 1 || p.percent > 100 {
			return "", fmt.Errorf("layout[%d]: %d%% is not between 1 and 100", i, p.percent)
		}
		total += p.percent
		if total > 100 {
			return "", fmt.Errorf("layout: the partitions add up to %d%%, more than the disk", total)
		}
		code := p.typ
		if code == "" {
			code = "83"
		}
		t, err := partType(table, code)
		if err != nil {
			return "", fmt.Errorf("layout[%d]: %w", i, err)
		}
		if i == len(parts)-1 && total == 100 {
			fmt.Fprintf(&b, "type=%s\n", t)
			continue
		}
		mb := size / 100 * int64(p.percent) >> 20
		if mb < 1 {
			return "", fmt.Errorf("layout[%d]: %d%% of %d bytes is less than 1 MiB", i, p.percent, size)
		}
		fmt.Fprintf(&b, "size=%dMiB, type=%s\n", mb, t)
	}
	return b.String(), nil
}
