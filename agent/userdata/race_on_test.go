//go:build race

package userdata

// raceEnabled: the race detector makes decompressing 128 MiB take ~15 s.
const raceEnabled = true
