package fetch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
)

// parseChecksumFile picks the digest for the file named base out of a
// checksum file: GNU coreutils lines ("HEX  name", "HEX *name", or a bare
// "HEX") or BSD tag lines ("SHA256 (name) = HEX"). With one entry, it is
// used whatever name it gives (a "latest" file often lists the versioned
// name); with several, the one naming base. algo "" infers sha256 or
// sha512 from the digest's length.
func parseChecksumFile(body []byte, algo, base string) (expected, error) {
	type entry struct{ algo, sum, name string }
	var entries []entry
	sc := bufio.NewScanner(bytes.NewReader(body))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var sum, name, tag string
		if tagged, rest, ok := strings.Cut(text, " ("); ok && !strings.ContainsAny(tagged, " \t") {
			// BSD: SHA256 (name) = HEX
			n, s, ok := strings.Cut(rest, ") = ")
			if !ok {
				return expected{}, fmt.Errorf("line %d: not a checksum line", line)
			}
			tag, name, sum = strings.ToLower(tagged), n, s
		} else {
			fields := strings.Fields(text)
			sum = fields[0]
			if len(fields) > 1 {
				name = strings.TrimPrefix(strings.TrimSpace(text[len(sum):]), "*")
			}
		}
		a := algo
		if a == "" {
			a = tag
		}
		if a == "" {
			switch len(sum) {
			case hexLen("sha256"):
				a = "sha256"
			case hexLen("sha512"):
				a = "sha512"
			}
		}
		if a == "" || (tag != "" && tag != a) {
			continue // another algorithm's line, as in a combined file
		}
		e, err := parseDigest(a, sum)
		if err != nil {
			return expected{}, fmt.Errorf("line %d: %w", line, err)
		}
		entries = append(entries, entry{a, e.sum, name})
	}
	if err := sc.Err(); err != nil {
		return expected{}, err
	}
	switch len(entries) {
	case 0:
		want := algo
		if want == "" {
			want = "sha256 or sha512"
		}
		return expected{}, fmt.Errorf("no %s digest in it", want)
	case 1:
		return expected{algo: entries[0].algo, sum: entries[0].sum}, nil
	}
	var found *entry
	for i, e := range entries {
		if e.name == base || path.Base(strings.TrimPrefix(e.name, "./")) == base {
			if found != nil && found.sum != e.sum {
				return expected{}, fmt.Errorf("two different digests for %q", base)
			}
			found = &entries[i]
		}
	}
	if found == nil {
		return expected{}, errors.New("no line for " + fmt.Sprintf("%q", base))
	}
	return expected{algo: found.algo, sum: found.sum}, nil
}
