// Package differential is the oracle: it boots the same user data under
// Debian bookworm's cloud-init (22.4, Debian's package) and under ec2init,
// each in a real systemd-nspawn container against ec2init's IMDS simulator,
// and compares what each boot did: the files it changed (type, mode,
// owner, content), the users and groups it made, what the user's scripts
// saw (argv, cwd, environment, umask, order) and whether it reported
// success. A difference fails the test unless allowlist.txt names it with
// the reason.
//
// The images are made once and cached (boot.sh, on bench/lib.sh); each
// document boots once per agent, one container at a time. The records of
// the last run stay in /var/tmp/ec2init-differential/results.
package differential

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

// agents, in boot order; the first is the one under test.
var agents = []string{"ec2init", "cloudinit"}

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func benchDir() string {
	if d := os.Getenv("EC2INIT_BENCH_DIR"); d != "" {
		return d
	}
	return "/var/tmp/ec2init-differential"
}

// prerequisites skips the test, naming what is missing.
func prerequisites(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots two containers per document")
	}
	rootfs := os.Getenv("EC2INIT_E2E_ROOTFS")
	if rootfs == "" {
		rootfs = "/var/tmp/ec2init-rootfs"
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"systemd-nspawn", "systemctl", "make", "go", "dpkg-deb", "mountpoint", "chroot", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "lib/systemd/systemd")); err != nil {
		missing = append(missing, "a rootfs at "+rootfs+" (run test/e2e/mkrootfs.sh)")
	}
	if len(missing) > 0 {
		t.Skipf("needs %s", strings.Join(missing, ", "))
	}
}

// script runs boot.sh with args; its log goes to the test's log on failure.
func script(env []string, args ...string) error {
	cmd := exec.Command(filepath.Join(here(), "boot.sh"), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("boot.sh %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 30))
	}
	return nil
}

func TestDifferential(t *testing.T) {
	prerequisites(t)
	start := time.Now()
	// cloud-init's image needs Debian's archive (apt-get): without it, skip.
	if err := script(nil, "prepare", "cloudinit"); err != nil {
		t.Skipf("cannot build the cloud-init image (Debian's archive through apt): %v", err)
	}
	if err := script(nil, "prepare", "ec2init"); err != nil {
		t.Fatal(err)
	}
	t.Logf("images ready in %s", time.Since(start).Round(time.Second))

	allow, err := loadAllowList(filepath.Join(here(), "allowlist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := documents()
	if err != nil {
		t.Fatal(err)
	}
	// What #include documents fetch: testdata/include over https on
	// loopback (the containers share the host's network; ec2init fetches
	// https only), its CA trusted in both images; @@URL@@ in a document is
	// its address.
	include := httptest.NewTLSServer(http.FileServer(http.Dir(filepath.Join(here(), "testdata", "include"))))
	t.Cleanup(include.Close)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: include.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	// IMDSv1 allowed: cloud-init asks for a token only once DMI data says
	// AWS, which a container lacks; ec2init asks for one all the same.
	sim, simURL := imdssim.Start(t, imdssim.Options{AllowV1: true})
	u, err := url.Parse(simURL)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"EC2INIT_BENCH_PORT=" + u.Port(), "DIFF_CA_FILE=" + caFile}
	results := filepath.Join(benchDir(), "results")
	if err := os.RemoveAll(results); err != nil {
		t.Fatal(err)
	}

	var report strings.Builder
	for i, doc := range docs {
		name := filepath.Base(doc)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(doc)
			if err != nil {
				t.Fatal(err)
			}
			sim.SetUserData(bytes.ReplaceAll(data, []byte("@@URL@@"), []byte(include.URL)))
			// Both agents see the same instance; each document is a new one.
			sim.Set("meta-data/instance-id", fmt.Sprintf("i-0d1ff0000000000%02d", i+1))
			var got [2]*effects
			for j, agent := range agents {
				out := filepath.Join(results, name, agent)
				bootStart := time.Now()
				if err := script(env, "boot", agent, out); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s booted and collected in %s", agent, time.Since(bootStart).Round(100*time.Millisecond))
				if got[j], err = loadEffects(out); err != nil {
					t.Fatalf("%s: %v", agent, err)
				}
			}
			for _, p := range mustChange[name] {
				if f, ok := got[1].files[p]; !ok || !f.changed {
					t.Errorf("cloud-init's boot did not make %s: the document (or the harness) is wrong", p)
				}
			}
			diffs := compare(got[0], got[1])
			fmt.Fprintf(&report, "## %s\n", name)
			for _, d := range diffs {
				reason, ok := allow.match(name, d.key)
				if ok {
					fmt.Fprintf(&report, "allowed %s (%s)\n%s\n", d.key, reason, indent(d.detail))
					t.Logf("allowed: %s (%s)", d.key, reason)
					continue
				}
				fmt.Fprintf(&report, "DIFFERS %s\n%s\n", d.key, indent(d.detail))
				t.Errorf("%s differs:\n%s", d.key, indent(d.detail))
			}
		})
	}
	for _, e := range allow.unused() {
		t.Logf("allow-list entry matched nothing this run: %s %s", e.doc, e.key)
	}
	if err := os.WriteFile(filepath.Join(results, "report.txt"), []byte(report.String()), 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("%d documents in %s (report: %s)", len(docs), time.Since(start).Round(time.Second), filepath.Join(results, "report.txt"))
}

// documents are the user data files in testdata, in name order.
func documents() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(here(), "testdata"))
	if err != nil {
		return nil, err
	}
	var docs []string
	for _, e := range entries {
		if !e.IsDir() {
			docs = append(docs, filepath.Join(here(), "testdata", e.Name()))
		}
	}
	if len(docs) == 0 {
		return nil, errors.New("no documents in testdata")
	}
	return docs, nil
}

// effects is what one boot did, as collect.sh recorded it.
type effects struct {
	files  map[string]fileEntry
	users  map[string]map[string]string // new or changed users: field -> value
	groups map[string]groupEntry        // new or changed groups
	trace  []traceEntry                 // the scripts' records, in order
	status string                       // ok or failed
	detail string                       // the agent's status output
	dir    string
}

type fileEntry struct {
	changed bool // changed by the boot, not only an ancestor of a change
	typ     string
	mode    string
	owner   string
	sum     string
}

type groupEntry struct {
	gid     string
	members []string
}

type traceEntry struct {
	name   string
	fields map[string]string
	keys   []string
}

// traceFile is where the documents' scripts record what they saw; it is
// compared entry by entry, not as a file.
const traceFile = "/var/log/difftest.trace"

func loadEffects(dir string) (*effects, error) {
	e := &effects{files: map[string]fileEntry{}, users: map[string]map[string]string{}, groups: map[string]groupEntry{}, dir: dir}
	if err := readLines(filepath.Join(dir, "files.txt"), func(line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return fmt.Errorf("files.txt: bad line %q", line)
		}
		e.files[f[1]] = fileEntry{changed: f[0] == "c", typ: f[2], mode: f[3], owner: f[4], sum: f[5]}
		return nil
	}); err != nil {
		return nil, err
	}

	imagePasswd := map[string]bool{}
	if err := readLines(filepath.Join(dir, "image-passwd"), func(line string) error {
		imagePasswd[strings.SplitN(line, ":", 2)[0]] = true
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readLines(filepath.Join(dir, "users.txt"), func(line string) error {
		f := strings.Split(line, "\t")
		if imagePasswd[f[0]] {
			return nil // the image's own
		}
		fields := map[string]string{}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			fields[k] = v
		}
		e.users[f[0]] = fields
		return nil
	}); err != nil {
		return nil, err
	}

	imageGroup := map[string]bool{}
	if err := readLines(filepath.Join(dir, "image-group"), func(line string) error {
		imageGroup[line] = true
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readLines(filepath.Join(dir, "group.txt"), func(line string) error {
		if imageGroup[line] {
			return nil
		}
		f := strings.Split(line, ":")
		if len(f) != 4 {
			return fmt.Errorf("group.txt: bad line %q", line)
		}
		var members []string
		if f[3] != "" {
			members = strings.Split(f[3], ",")
			sort.Strings(members)
		}
		e.groups[f[0]] = groupEntry{gid: f[2], members: members}
		return nil
	}); err != nil {
		return nil, err
	}

	err := readLines(filepath.Join(dir, "content", traceFile), func(line string) error {
		if name, ok := strings.CutPrefix(line, "== "); ok {
			e.trace = append(e.trace, traceEntry{name: name, fields: map[string]string{}})
			return nil
		}
		if len(e.trace) == 0 {
			return fmt.Errorf("trace: %q before an entry", line)
		}
		cur := &e.trace[len(e.trace)-1]
		k, v, _ := strings.Cut(line, "=")
		cur.fields[k] = v
		cur.keys = append(cur.keys, k)
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}

	status, err := os.ReadFile(filepath.Join(dir, "status.txt"))
	if err != nil {
		return nil, err
	}
	e.detail = strings.TrimSpace(string(status))
	e.status = "failed"
	if regexp.MustCompile(`(?m)^status: done$`).Match(status) && strings.Contains(string(status), "exit=0") {
		e.status = "ok"
	}
	return e, nil
}

func readLines(path string, each func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if err := each(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ownPaths are each agent's own records and the test's harness: files
// only one of them has by design, never compared.
var ownPaths = []string{
	"/var/lib/cloud/", "/var/log/cloud-init.log", "/var/log/cloud-init-output.log", "/etc/cloud/cloud.cfg.d/",
	"/var/lib/ec2init/", "/var/log/ec2init", "/etc/ec2init/conf.d/",
	"/var/lib/differential-marker", "/usr/local/lib/bench/", "/etc/systemd/system/bench-done.service",
	"/etc/systemd/system/ec2init.target.wants/bench-done.service", "/etc/systemd/system/cloud-init.target.wants/bench-done.service",
	"/etc/ssh/sshd_config.d/50-differential.conf", "/etc/default/locale", "/var/log/journal",
	traceFile,
}

// accountFiles are compared entry by entry (users, groups), not as files:
// their lines' order follows the order the accounts were made in.
var accountFiles = map[string]bool{}

func init() {
	for _, f := range []string{"passwd", "group", "shadow", "gshadow", "subuid", "subgid"} {
		accountFiles["/etc/"+f] = true
		accountFiles["/etc/"+f+"-"] = true
	}
}

// mustChange are effects each document has under cloud-init: without them
// the document (or the harness) is wrong and a match proves nothing.
var mustChange = map[string][]string{
	"01-eks.mime":    {"/etc/docker/daemon.json", "/etc/eks/bootstrap.env", "/etc/eks/containerd/config.toml", "/etc/eks/order.txt", traceFile},
	"02-runcmd.yaml": {"/root/pwd.txt", "/root/foo.txt", "/root/foo-string.txt", "/root/after-failure.txt", "/root/args.txt", "/root/file with spaces.txt", "/root/int-args.txt", traceFile},
	"03-users.yaml": {"/etc/app/conf.d/nested/app.conf", "/home/app/.config/app/settings.ini", "/srv/app/data/state.json", "/etc/app/motd", "/home/app/.ssh/authorized_keys",
		"/usr/local/bin/app-start", "/etc/app/decimal-mode", "/etc/app/compressed", "/etc/app/nobody-owned", "/etc/motd", "/etc/issue.net"},
	"04-merge.mime":       {"/etc/merge/base.txt", "/etc/merge/appended-by-header.txt", "/etc/merge/appended-by-body.txt", "/var/log/merge-runcmd.txt", "/var/log/merge-bootcmd.txt"},
	"05-order.mime":       {"/var/log/order.txt", "/opt/svc/configured", traceFile},
	"06-jinja.yaml":       {"/etc/jinja/instance.conf", "/root/jinja-runcmd.txt", "/root/jinja-region.txt"},
	"07-broken-part.mime": {"/etc/broken/valid-part.txt", "/root/broken-script.txt"},
	"10-include.txt":      {"/etc/included/from-include.txt", "/root/included-script.txt"},
	"09-archive.gz":       {"/var/log/archive-boothook.txt", "/root/archive-script.txt", "/etc/archive/from-archive.txt", "/root/archive-runcmd.txt"},
	"08-system.yaml":      {"/etc/hostname", "/etc/hosts", "/etc/timezone", "/root/bootcmd.txt", "/etc/ssl/certs/ca-certificates.crt"},
}

// cloudInitViews are the files in cloud-init's own tree that tools read
// and ec2init writes too (agent/civiews): compared for type, mode and
// owner, and for content where it holds no time or version.
var cloudInitViews = map[string]bool{
	"/var/lib/cloud/instance":                  true, // the link to this instance's directory
	"/var/lib/cloud/data/instance-id":          true,
	"/var/lib/cloud/data/previous-instance-id": true,
	"/var/lib/cloud/data/status.json":          false,
	"/var/lib/cloud/data/result.json":          false,
	"/var/lib/cloud/instances/*/boot-finished": false,
	"/var/lib/cloud/instances/*/user-data.txt": true,
}

// view tells whether p is one of cloudInitViews, and whether its content
// is compared.
func view(p string) (isView, content bool) {
	for pattern, c := range cloudInitViews {
		if ok, _ := filepath.Match(pattern, p); ok {
			return true, c
		}
	}
	return false, false
}

func own(p string) bool {
	if isView, _ := view(p); isView {
		return false
	}
	for _, o := range ownPaths {
		if p == strings.TrimSuffix(o, "/") || strings.HasPrefix(p, o) {
			return true
		}
	}
	return false
}

// difference is one way the boots differ: key names it for the allow-list
// ("file:/etc/x:mode"), detail shows both sides.
type difference struct {
	key    string
	detail string
}

// compare lists how boot a (ec2init) differs from boot b (cloud-init).
func compare(a, b *effects) []difference {
	var out []difference
	add := func(key, format string, args ...any) {
		out = append(out, difference{key: key, detail: fmt.Sprintf(format, args...)})
	}

	if a.status != b.status {
		add("status", "ec2init:    %s\n%s\ncloud-init: %s\n%s", a.status, indent(a.detail), b.status, indent(b.detail))
	}

	// Files. A directory one boot changed and the other did not is no
	// difference by itself (a file made and removed in it changes it): what
	// is in it is compared.
	for _, p := range union(keys(a.files), keys(b.files)) {
		if own(p) {
			continue
		}
		fa, inA := a.files[p]
		fb, inB := b.files[p]
		switch {
		case inA && inB:
			if fa.typ != fb.typ {
				add("file:"+p+":type", "ec2init:    %s\ncloud-init: %s", fa.typ, fb.typ)
				continue
			}
			if fa.mode != fb.mode {
				add("file:"+p+":mode", "ec2init:    %s\ncloud-init: %s", fa.mode, fb.mode)
			}
			if fa.owner != fb.owner {
				add("file:"+p+":owner", "ec2init:    %s\ncloud-init: %s", fa.owner, fb.owner)
			}
			if fa.typ == "symbolic link" {
				// The same file, however the link names it.
				fa.sum, fb.sum = linkTarget(p, fa.sum), linkTarget(p, fb.sum)
			}
			isView, viewContent := view(p)
			if fa.sum != fb.sum && !accountFiles[p] && (!isView || viewContent) && !sameNormalised(a.dir, b.dir, p) {
				add("file:"+p+":content", "%s", contentDiff(a.dir, b.dir, p, fa.sum, fb.sum))
			}
		case inA && fa.typ != "directory":
			add("file:"+p+":only-ec2init", "ec2init:    %s %s %s\n%s", fa.typ, fa.mode, fa.owner, indent(content(a.dir, p)))
		case inB && fb.typ != "directory":
			add("file:"+p+":only-cloudinit", "cloud-init: %s %s %s\n%s", fb.typ, fb.mode, fb.owner, indent(content(b.dir, p)))
		}
	}

	// Users and groups the boots made or changed.
	for _, u := range union(keys(a.users), keys(b.users)) {
		ua, inA := a.users[u]
		ub, inB := b.users[u]
		switch {
		case !inB:
			add("user:"+u+":only-ec2init", "ec2init:    %v", ua)
		case !inA:
			add("user:"+u+":only-cloudinit", "cloud-init: %v", ub)
		default:
			for _, k := range union(keys(ua), keys(ub)) {
				if ua[k] != ub[k] {
					add("user:"+u+":"+k, "ec2init:    %s\ncloud-init: %s", ua[k], ub[k])
				}
			}
		}
	}
	for _, g := range union(keys(a.groups), keys(b.groups)) {
		ga, inA := a.groups[g]
		gb, inB := b.groups[g]
		switch {
		case !inB:
			add("group:"+g+":only-ec2init", "ec2init:    gid %s members %v", ga.gid, ga.members)
		case !inA:
			add("group:"+g+":only-cloudinit", "cloud-init: gid %s members %v", gb.gid, gb.members)
		default:
			if ga.gid != gb.gid {
				add("group:"+g+":gid", "ec2init:    %s\ncloud-init: %s", ga.gid, gb.gid)
			}
			if strings.Join(ga.members, ",") != strings.Join(gb.members, ",") {
				add("group:"+g+":members", "ec2init:    %v\ncloud-init: %v", ga.members, gb.members)
			}
		}
	}

	// What the scripts saw, and in which order they ran.
	order := func(tr []traceEntry) string {
		var names []string
		for _, e := range tr {
			names = append(names, e.name)
		}
		return strings.Join(names, " ")
	}
	if order(a.trace) != order(b.trace) {
		add("trace:order", "ec2init:    %s\ncloud-init: %s", order(a.trace), order(b.trace))
	}
	byName := func(tr []traceEntry) map[string]traceEntry {
		m := map[string]traceEntry{}
		for _, e := range tr {
			if _, dup := m[e.name]; !dup {
				m[e.name] = e
			}
		}
		return m
	}
	ta, tb := byName(a.trace), byName(b.trace)
	for _, n := range union(keys(ta), keys(tb)) {
		ea, inA := ta[n]
		eb, inB := tb[n]
		switch {
		case !inB:
			add("trace:"+n+":only-ec2init", "ran under ec2init only")
		case !inA:
			add("trace:"+n+":only-cloudinit", "ran under cloud-init only")
		default:
			for _, k := range union(ea.keys, eb.keys) {
				if ea.fields[k] == eb.fields[k] {
					continue
				}
				if k == "env" {
					add("trace:"+n+":env", "%s", setDiff(ea.fields[k], eb.fields[k]))
					continue
				}
				add("trace:"+n+":"+k, "ec2init:    %s\ncloud-init: %s", ea.fields[k], eb.fields[k])
			}
		}
	}
	return out
}

// setDiff shows two space-separated name lists as what each has alone.
func setDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, f := range strings.Fields(s) {
			m[f] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var onlyA, onlyB []string
	for _, k := range union(keys(ma), keys(mb)) {
		switch {
		case ma[k] && !mb[k]:
			onlyA = append(onlyA, k)
		case mb[k] && !ma[k]:
			onlyB = append(onlyB, k)
		}
	}
	return fmt.Sprintf("ec2init only:    %s\ncloud-init only: %s", strings.Join(onlyA, " "), strings.Join(onlyB, " "))
}

// content is a changed file's text as the boot left it (collect.sh copies
// files up to 64 KiB).
func content(dir, p string) string {
	b, err := os.ReadFile(filepath.Join(dir, "content", p))
	if err != nil {
		return "(content not kept)"
	}
	if strings.Contains(string(b), "PRIVATE KEY") {
		return "(a private key, not shown)"
	}
	if !utf8Text(b) {
		return fmt.Sprintf("(%d bytes, binary)", len(b))
	}
	return strings.TrimSuffix(string(b), "\n")
}

func utf8Text(b []byte) bool {
	return !strings.ContainsRune(string(b), 0) && strings.ToValidUTF8(string(b), "\uFFFD") == string(b)
}

// linkTarget is a symbolic link's target ("-> ../usr/share/x") as an
// absolute path.
func linkTarget(link, sum string) string {
	target := strings.TrimPrefix(sum, "-> ")
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(link), target)
	}
	return "-> " + filepath.Clean(target)
}

// createdBy is the header line each agent stamps on a file it generates
// (sudoers.d), naming itself and the time.
var createdBy = regexp.MustCompile(`(?m)^# Created by .* on .*$`)

// sameNormalised tells whether a file both boots left with different bytes
// differs only in what legitimately does: the generator's header line, the
// order of authorized keys.
func sameNormalised(dirA, dirB, p string) bool {
	a, errA := os.ReadFile(filepath.Join(dirA, "content", p))
	b, errB := os.ReadFile(filepath.Join(dirB, "content", p))
	if errA != nil || errB != nil {
		return false
	}
	norm := func(b []byte) string { return createdBy.ReplaceAllString(string(b), "# Created by AGENT") }
	if filepath.Base(p) == "authorized_keys" {
		// cloud-init 22.4 writes a user's keys through a Python set: in a
		// random order.
		norm = func(b []byte) string {
			lines := strings.Split(string(b), "\n")
			sort.Strings(lines)
			return strings.Join(lines, "\n")
		}
	}
	return norm(a) == norm(b)
}

func contentDiff(dirA, dirB, p, sumA, sumB string) string {
	ca, cb := content(dirA, p), content(dirB, p)
	if ca == "(content not kept)" || cb == "(content not kept)" {
		return fmt.Sprintf("ec2init:    sha256 %s\ncloud-init: sha256 %s", sumA, sumB)
	}
	return fmt.Sprintf("ec2init:\n%s\ncloud-init:\n%s", indent(ca), indent(cb))
}

func indent(s string) string {
	if s == "" {
		return "    (empty)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = append(lines[:40], fmt.Sprintf("... %d more lines", len(lines)-40))
	}
	return "    " + strings.Join(lines, "\n    ")
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// union is the sorted union of two name lists.
func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
