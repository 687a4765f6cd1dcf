// Package sys is the host as the agent sees it: files, users, commands and
// services, all through one root prefix so tests and dry runs never touch
// the machine they run on.
package sys
