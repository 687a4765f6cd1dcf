package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// bootIDFile is the kernel's boot id, a UUID new at every boot. It is read
// from the running system, never under the root prefix.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

func readBootID() (string, error) {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !validName(id) {
		return "", fmt.Errorf("boot id: %s holds %q", bootIDFile, id)
	}
	return id, nil
}

// procStartTime returns when process pid started, in clock ticks since boot
// (field 22 of /proc/<pid>/stat). With the boot id it names a process
// uniquely: a pid reused later in the same boot has a later start time.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: fields resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	const startTime = 22 - 3 // field 3 (state) is fields[0]
	if len(fields) <= startTime {
		return 0, errors.New("malformed /proc stat")
	}
	return strconv.ParseUint(fields[startTime], 10, 64)
}

// processAlive reports whether the process that wrote a record (pid, and its
// start time when known) is still running. It is called only for records of
// the current boot.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false // ESRCH: no such process
	}
	if start == 0 {
		return true
	}
	got, err := procStartTime(pid)
	if err != nil {
		// Gone between the two looks, or /proc hides it: trust kill.
		return !errors.Is(err, os.ErrNotExist)
	}
	return got == start
}
