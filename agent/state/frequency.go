package state

import "fmt"

// Frequency says how often a module runs.
type Frequency string

// The frequencies. Their values are the canonical spellings, used in file
// names and JSON.
const (
	// PerInstance: once for each instance id this disk runs as.
	PerInstance Frequency = "per-instance"
	// PerBoot: once for each boot (kernel boot id).
	PerBoot Frequency = "per-boot"
	// Once: once ever on this disk, whatever the instance.
	Once Frequency = "once"
	// Always: every time the agent runs; no semaphore.
	Always Frequency = "always"
)

// ParseFrequency returns the frequency s names: the canonical spellings, and
// cloud-init's "instance" and "once-per-instance" for PerInstance and "boot"
// for PerBoot. Spelling is exact (lower case, no spaces).
func ParseFrequency(s string) (Frequency, error) {
	switch s {
	case "per-instance", "instance", "once-per-instance":
		return PerInstance, nil
	case "per-boot", "boot":
		return PerBoot, nil
	case "once":
		return Once, nil
	case "always":
		return Always, nil
	}
	return "", fmt.Errorf("frequency %q: want per-instance, per-boot, once or always", s)
}

// Valid reports whether f is one of the four canonical frequencies.
func (f Frequency) Valid() bool {
	switch f {
	case PerInstance, PerBoot, Once, Always:
		return true
	}
	return false
}

func (f Frequency) String() string { return string(f) }

// UnmarshalText parses f with ParseFrequency, so configuration (YAML, JSON)
// may use the aliases.
func (f *Frequency) UnmarshalText(b []byte) error {
	v, err := ParseFrequency(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}
