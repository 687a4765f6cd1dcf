// Package civiews writes and reads the files tools written for cloud-init
// look for: cloud-init-per's semaphores, /run/cloud-init/status.json and
// result.json, and /var/lib/cloud's instance link, boot-finished,
// user-data.txt and instance ids. They are views: ec2init's own state
// under /var/lib/ec2init stays the source of truth, and every write goes
// through sys.Root (the --root prefix).
package civiews
