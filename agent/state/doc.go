// Package state is ec2init's memory on disk: which instance and boot this
// disk last saw, which modules have run (semaphores), which were cut short
// (run records), and the status and result of boots. Everything is plain
// JSON or plain text, readable with cat and jq, and every file is replaced
// atomically and durably (package atomicfile), so a crash or power cut
// leaves either the old content or the new one.
//
// All paths live under one root prefix (Options.Root: "/" in production, a
// temporary directory in tests); the store never touches a path outside it:
// every path it reads, writes or removes is resolved by sys.Root, which
// follows a symlink under the root as inside a chroot and refuses one that
// climbs out of it (ErrEscapesRoot).
// Directories are 0700 and files 0600, set explicitly whatever the umask, and
// directories that exist with other modes are set back when the store opens
// or an instance begins.
//
// # Layout
//
//	/var/lib/ec2init/                        0700
//	  data/instance-id                       the current instance id (text)
//	  data/previous-instance-id              the instance id before it changed (text)
//	  data/last-boot-id                      the boot id of the latest boot (text)
//	  data/previous-boot-id                  the boot before it (text)
//	  instances/<instance-id>/               one per instance this disk has run as
//	    user-data.raw                        WriteInstanceFile: user data as fetched
//	    user-data.parts/<part>               WriteInstanceFile: decoded parts
//	    sem/<module>.per-instance            semaphores of per-instance modules
//	    records/<module>.per-instance.json   run records of per-instance modules
//	    boot-finished                        {at, boot_id, version}
//	  sem/<module>.once                      semaphores of once modules (ever, on this disk)
//	  records/<module>.once.json             run records of once modules
//	  boots/<boot-id>/                       this boot and the previous one only
//	    transition.json                      the boot's decision (see BeginInstance)
//	    sem/<module>.per-boot                semaphores of per-boot modules
//	    records/<module>.{per-boot,always}.json
//	  status.json                            the current or last boot's Status
//	  result.json                            the last finished boot's Status
//	  seed/                                  not written here; kept by Clean unless Seed
//	/run/ec2init/                            0755, RunDir: runtime files of the agent
//
// # Semaphores
//
// A semaphore file is written by MarkDone after a module succeeds; while it
// exists ShouldRun reports false. Its JSON content ({"module", "frequency",
// "at", "boot_id", "instance_id"}) is informative only: existence is what
// counts. The scope of a semaphore follows the frequency: per-instance
// semaphores live in the instance's directory, so a new instance id runs
// those modules again; per-boot ones in the boot's directory, so a new boot
// id runs them again; once semaphores at the top, so nothing but Clean runs
// them again; always modules have none.
//
// # Run records and interruptions
//
// A run record sits next to each semaphore scope, one file per module and
// frequency. MarkStarted writes it as "running" (with the boot id, the pid
// and the pid's start time) before the module runs; MarkFinished rewrites it
// as "finished" with the outcome. A record still "running" when its boot is
// over, or whose process is gone, is the mark of a crash: Interrupted reports
// it. The store does not decide what to do about it; the agent does, by
// policy (by default it does not run the module again, and says so in the
// status). Marking the record finished with OutcomeInterrupted keeps it
// reported as interrupted; only starting the module again clears it. The
// agent's sequence for one module is:
//
//	run, _, err := st.ShouldRun(name, f)        // false: done already
//	interrupted, rec, err := st.Interrupted(name, f)
//	// policy: skip an interrupted module, or run it again
//	st.MarkStarted(name, f)
//	err = module.Run(...)
//	if err == nil { st.MarkDone(name, f) }      // the semaphore first,
//	st.MarkFinished(name, f, outcome, err)      // then the record
//
// A crash between MarkDone and MarkFinished leaves the semaphore, so the
// module is not run again, and a record that Interrupted reports.
//
// # Boots and instances
//
// BeginInstance takes the decision of a boot once: new instance or not, new
// boot or not, first boot ever on this disk. It is recorded in the boot's
// directory, so every stage of one boot (ec2init-local, ec2init,
// ec2init-final, a restarted agent) gets the same answer. Directories of
// boots older than the previous one are removed then; instance directories
// are kept.
//
// The boot id is the kernel's (/proc/sys/kernel/random/boot_id, read from
// the running system, not under the root) unless Options.BootID gives one.
package state
