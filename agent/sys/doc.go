// Package sys is the host as the agent sees it: files, users, commands and
// services, all through one root prefix so tests and dry runs never touch
// the machine they run on.
//
// Root maps absolute host paths ("/etc/hosts") under the prefix with chroot
// semantics and refuses any path that would leave it; its writes are atomic
// and apply modes exactly. Root.LookupOwner reads the root's own
// /etc/passwd and /etc/group, never the host's.
//
// Runner runs commands as argv (never through a shell it adds itself) with a
// clean environment, stdin on /dev/null and their own process group, so a
// timeout ends everything a script started. Under a root other than "/"
// commands still run on the host, cwd "/", with EC2INIT_ROOT naming the
// prefix; Runner.Chroot runs them chrooted into the root instead.
package sys
