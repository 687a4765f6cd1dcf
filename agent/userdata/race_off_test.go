//go:build !race

package userdata

const raceEnabled = false
