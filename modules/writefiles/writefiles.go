// Package writefiles implements cloud-init's write_files (network stage,
// once per instance) and write_files_deferred (final stage, once per
// instance): files written from the cloud-config, decoded, owned and
// permissioned as each item says.
//
// Owners created by the users module: users runs before write_files in the
// network stage, so an item naming a user or group it creates resolves. An
// item whose owner still does not resolve is not failed there: it is
// recorded (by index and path, never content) in the instance's state
// directory and written by write_files_deferred in the final stage, after
// packages (which may create system users) have run. Only if the owner is
// still missing then is the item an error.
package writefiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/modules"
)

// Key is the cloud-config key both passes read.
const Key = "write_files"

// decodeSteps maps every spelling cloud-init accepts to the decoding
// steps, applied in order.
func decodeSteps(enc string) (steps []string, ok bool) {
	switch enc {
	case "", "text/plain":
		return nil, true
	case "b64", "base64":
		return []string{"base64"}, true
	case "gz", "gzip":
		return []string{"gzip"}, true
	case "gz+b64", "gz+base64", "gzip+b64", "gzip+base64":
		return []string{"base64", "gzip"}, true
	}
	return nil, false
}

func encodingNames() []string {
	return []string{"gz", "gzip", "gz+base64", "gzip+base64", "gz+b64", "gzip+b64", "b64", "base64", "text/plain"}
}

// itemType is one write_files item.
var itemType = config.Object(
	config.Field{Name: "source", Type: config.Object(
		config.Field{Name: "uri", Type: config.String(), Required: true, Doc: "URL of the content (https, http, s3, file), fetched through the agent's fetcher."},
		config.Field{Name: "headers", Type: config.MapOf(config.String()), Doc: "Request headers; not sent by ec2init (see docs/compatibility.md)."},
	), Doc: "Fetch the content from a URL; content (decoded) is the fallback when the fetch fails."},
	config.Field{Name: "path", Type: config.String(), Required: true, Doc: "Absolute path of the file to write."},
	config.Field{Name: "content", Type: config.String(), Default: "''", Doc: "Content, decoded as encoding says (a YAML !!binary value is decoded too)."},
	config.Field{Name: "encoding", Type: config.Enum(encodingNames()...), Default: "text/plain", Doc: "How content is encoded: gzip, base64 or both (gz+b64)."},
	config.Field{Name: "owner", Type: config.String(), Default: "root:root", Doc: "user:group owning the file and the directories created for it, as the root's /etc/passwd and /etc/group name them; a user alone (or user:) leaves the group root's, as cloud-init."},
	config.Field{Name: "permissions", Type: config.OneOf(config.String(), config.Int()), Default: "'0644'", Doc: "Mode, as an octal string such as '0640' (or an integer)."},
	config.Field{Name: "append", Type: config.Bool(), Default: "false", Doc: "Append content to the file instead of replacing it."},
	config.Field{Name: "defer", Type: config.Bool(), Default: "false", Doc: "Write the file in the final stage, after users and packages."},
)

// WriteFiles writes the items without defer, once per instance, in the
// network stage (after users, so owners it creates exist).
type WriteFiles struct{}

func (WriteFiles) Name() string                 { return "write_files" }
func (WriteFiles) Stage() modules.Stage         { return modules.StageNetwork }
func (WriteFiles) Frequency() modules.Frequency { return state.PerInstance }
func (WriteFiles) Schema() modules.Schema {
	return modules.Schema{
		Doc:  "Write files from the cloud-config: content, encoding, owner, permissions, append; defer to the final stage.",
		Keys: []config.Field{{Name: Key, Type: config.ListOf(itemType), Doc: "Files to write, in order."}},
	}
}

func (WriteFiles) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	items, err := parseItems(cfg)
	if err != nil || items == nil {
		return err
	}
	var failures []error
	var pending []pendingItem
	for _, it := range items {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if it.deferred {
			continue // its problems are the deferred pass's to report
		}
		if it.err != nil {
			failures = append(failures, it.err)
			continue
		}
		owner, err := it.resolveOwner(env.Root)
		if err != nil {
			// users may not have created it, or a package (final stage)
			// will: try again in the deferred pass rather than fail now.
			env.Logger().Warn("write_files: owner not found yet; the file is written in the final stage (write_files_deferred)",
				zap.Int("item", it.index), zap.String("path", it.path), zap.Error(err))
			pending = append(pending, pendingItem{Index: it.index, Path: it.path})
			continue
		}
		if err := it.fetchSource(ctx, env); err != nil {
			failures = append(failures, err)
			continue
		}
		if err := it.write(env.Root, owner); err != nil {
			failures = append(failures, err)
		}
	}
	if err := savePending(env, pending); err != nil {
		failures = append(failures, err)
	}
	return modules.JoinItemErrors(failures)
}

// WriteFilesDeferred writes the items with defer: true, and those whose
// owner did not exist in the network stage, once per instance in the final
// stage. It reads write_files too; the key is declared by WriteFiles alone
// (a key has one owner in the registry), so it asks to run through Wanted.
type WriteFilesDeferred struct{}

func (WriteFilesDeferred) Name() string                 { return "write_files_deferred" }
func (WriteFilesDeferred) Stage() modules.Stage         { return modules.StageFinal }
func (WriteFilesDeferred) Frequency() modules.Frequency { return state.PerInstance }
func (WriteFilesDeferred) Schema() modules.Schema {
	return modules.Schema{Doc: "Write the write_files items marked defer (and those whose owner was missing earlier), after packages and users."}
}

// Wanted: write_files is declared by WriteFiles.
func (WriteFilesDeferred) Wanted(cfg *config.CloudConfig) bool { return cfg.Has(Key) }

// BeforeScripts: a user script may need a deferred file (cloud-init runs
// write_files_deferred before scripts_user).
func (WriteFilesDeferred) BeforeScripts() bool { return true }

func (WriteFilesDeferred) Run(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) error {
	items, err := parseItems(cfg)
	if err != nil {
		return err
	}
	pending, err := loadPending(env)
	if err != nil {
		return err
	}
	retry := map[int]bool{}
	for _, p := range pending {
		if p.Index < len(items) && items[p.Index].path == p.Path && !items[p.Index].deferred {
			retry[p.Index] = true
			continue
		}
		// The user data changed between the stages (a re-run by hand):
		// the record no longer names that item.
		env.Logger().Warn("write_files_deferred: a recorded item no longer matches the cloud-config; skipped",
			zap.Int("item", p.Index), zap.String("path", p.Path))
	}
	var failures []error
	for _, it := range items {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Items with a parse error were reported by the first pass; a
		// deferred one is reported here, where it would have been written.
		if !it.deferred && !retry[it.index] {
			continue
		}
		if it.err != nil {
			failures = append(failures, it.err)
			continue
		}
		owner, err := it.resolveOwner(env.Root)
		if err != nil {
			failures = append(failures, fmt.Errorf("write_files[%d] %s: %w (still missing in the final stage)", it.index, it.path, err))
			continue
		}
		if err := it.fetchSource(ctx, env); err != nil {
			failures = append(failures, err)
			continue
		}
		if err := it.write(env.Root, owner); err != nil {
			failures = append(failures, err)
		}
	}
	if err := savePending(env, nil); err != nil {
		failures = append(failures, err)
	}
	return modules.JoinItemErrors(failures)
}

// item is one parsed write_files entry. Its errors name the index and
// path, never the content.
type item struct {
	index    int
	path     string
	content  []byte
	owner    string // "" means the default, root:root
	perm     os.FileMode
	append   bool
	deferred bool
	err      error
	// sourceURI is write_files[].source.uri: the content is fetched at
	// write time, the decoded content being the fallback when hasContent.
	sourceURI  string
	hasContent bool
}

// parseItems reads every item; an item that cannot be understood carries
// its error so that the other items are still written. A nil slice and nil
// error mean the key is absent.
func parseItems(cfg *config.CloudConfig) ([]item, error) {
	val, ok := cfg.Get(Key)
	if !ok {
		return nil, nil
	}
	n := val.Node
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return []item{}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: %s: expected a list of files", val.Source, val.KeyLine, Key)
	}
	items := make([]item, 0, len(n.Content))
	for i, in := range n.Content {
		items = append(items, parseItem(i, in))
	}
	return items, nil
}

func parseItem(i int, n *yaml.Node) item {
	it := item{index: i, perm: 0o644}
	// The errors wrapped here never hold content: decoders report
	// positions, not bytes.
	fail := func(format string, args ...any) item {
		where := fmt.Sprintf("write_files[%d] (line %d)", i, n.Line)
		if it.path != "" {
			where = fmt.Sprintf("write_files[%d] %s", i, it.path)
		}
		it.err = fmt.Errorf("%s: %w", where, fmt.Errorf(format, args...))
		return it
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return fail("expected a mapping with a path")
	}
	fields := map[string]*yaml.Node{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		v := n.Content[j+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		fields[n.Content[j].Value] = v
	}
	p, ok := fields["path"]
	if !ok || p.Kind != yaml.ScalarNode || p.Value == "" || p.Tag == "!!null" {
		return fail("path is required")
	}
	// cloud-init takes os.path.abspath: relative to its working directory, "/".
	it.path = path.Clean("/" + p.Value)

	// The flags come first: a deferred item's problems belong to the
	// deferred pass.
	for _, k := range []string{"append", "defer"} {
		v, ok := fields[k]
		if !ok || v.Tag == "!!null" {
			continue
		}
		b, err := config.ParseBool(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			return fail("%s: expected true or false", k)
		}
		if k == "append" {
			it.append = b
		} else {
			it.deferred = b
		}
	}
	if v, ok := fields["owner"]; ok && v.Tag != "!!null" {
		if v.Kind != yaml.ScalarNode || v.Value == "" {
			return fail("owner: expected user:group")
		}
		it.owner = v.Value
	}
	if v, ok := fields["permissions"]; ok && v.Tag != "!!null" {
		perm, err := parsePerm(v)
		if err != nil {
			return fail("permissions: %w", err)
		}
		it.perm = perm
	}
	enc := ""
	if v, ok := fields["encoding"]; ok && v.Tag != "!!null" {
		enc = strings.ToLower(strings.TrimSpace(v.Value))
	}
	steps, ok := decodeSteps(enc)
	if !ok {
		return fail("encoding %q: expected one of %s", enc, strings.Join(encodingNames(), ", "))
	}
	c, hasContent := fields["content"]
	if src, ok := fields["source"]; ok && src.Tag != "!!null" {
		if err := it.parseSource(src); err != nil {
			return fail("source: %w", err)
		}
		it.hasContent = hasContent && c.Tag != "!!null"
	}
	if !hasContent || c.Tag == "!!null" {
		return it // an empty file, as cloud-init writes
	}
	if c.Kind != yaml.ScalarNode {
		return fail("content: expected a string")
	}
	data := []byte(c.Value)
	if c.Tag == "!!binary" {
		// PyYAML hands cloud-init the bytes of a !!binary value.
		b, err := decodeBase64(c.Value)
		if err != nil {
			return fail("content: !!binary value: %w", err)
		}
		data = b
	}
	for _, step := range steps {
		var err error
		switch step {
		case "base64":
			data, err = decodeBase64(string(data))
		case "gzip":
			data, err = gunzip(data)
		}
		if err != nil {
			return fail("content: decoding %s: %w", enc, err)
		}
	}
	it.content = data
	return it
}

// parsePerm reads a mode as cloud-init does: an integer is the mode itself
// (YAML's 0644 is octal, as PyYAML reads it), a string is octal digits. Unlike
// cloud-init, which falls back to 0644 with a warning, an unreadable mode
// fails the item: a file meant to be private is not written readable.
func parsePerm(n *yaml.Node) (os.FileMode, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, errors.New("expected an octal string such as '0644'")
	}
	var v uint64
	var err error
	s := strings.TrimSpace(n.Value)
	if n.Tag == "!!int" {
		// Base 0: 0644 and 0o644 are octal, 420 decimal, 0x1a4 hex.
		v, err = strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 32)
	} else {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
		v, err = strconv.ParseUint(s, 8, 32)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not an octal mode", n.Value)
	}
	if v > 0o7777 {
		return 0, fmt.Errorf("%q is beyond 07777", n.Value)
	}
	return os.FileMode(v), nil
}

// decodeBase64 decodes like Python's b64decode: whitespace ignored,
// missing padding tolerated.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err2 == nil {
			return b2, nil
		}
		return nil, err
	}
	return b, nil
}

// gunzip decompresses content, capped at bounded.MaxInMemory: 800 bytes of
// gz+b64 can expand to 128 MiB, and every item is decoded in both passes.
// A first pass only counts (nothing is kept), so a bomb is refused without
// holding its output in memory.
func gunzip(data []byte) ([]byte, error) {
	const what = "content"
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	err = discard(bounded.NewReader(zr, bounded.MaxInMemory, what+" after gzip"))
	zr.Close()
	if err != nil {
		return nil, err
	}
	return bounded.Gunzip(data, bounded.MaxInMemory, what)
}

// discard reads r to its end in large reads (io.Discard's own 8 KiB reads
// make counting a bomb several times slower).
func discard(r io.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		_, err := r.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// resolveOwner returns the item's owner. The default root:root is uid 0,
// gid 0 everywhere, so it needs no /etc/passwd.
//
// As cloud-init's runtime (extract_usergroup, chownbyname): a part that is
// empty, "-1" or "none" is left unchanged, which for a file (and the
// directories) root creates is root's 0. So "owner: alice" (or "alice:")
// is alice:root, not alice's login group.
func (it item) resolveOwner(root *sys.Root) (sys.Owner, error) {
	if it.owner == "" {
		return sys.Owner{UID: 0, GID: 0}, nil
	}
	u, g, _ := strings.Cut(it.owner, ":")
	u, g = unsetPart(u), unsetPart(g)
	var spec string
	switch {
	case u == "" && g == "":
		return sys.Owner{UID: 0, GID: 0}, nil
	case g == "":
		spec = u
	default:
		spec = u + ":" + g
	}
	o, err := root.LookupOwner(spec)
	if err != nil {
		return sys.Owner{}, err
	}
	if g == "" {
		o.GID = 0
	}
	if u == "" {
		o.UID = 0
	}
	return o, nil
}

// unsetPart is "" for what cloud-init reads as no user or group.
func unsetPart(s string) string {
	s = strings.TrimSpace(s)
	if s == "-1" || strings.EqualFold(s, "none") {
		return ""
	}
	return s
}

// write puts the item on disk: parents it creates get 0755 and the item's
// owner, every one of them from the topmost missing down (as cloud-init's
// write_file and ensure_dir do); existing parents are left alone; the file is replaced atomically,
// or appended to, with its mode and owner set on the opened file. Every
// step goes through sys.Root, which refuses a symlink a user could have
// planted (~user/app.conf -> /etc/shadow) and acts relative to opened
// directories: the check is made here, at write time, so a deferred item is
// checked after the users it names exist.
func (it item) write(root *sys.Root, owner sys.Owner) error {
	fail := func(err error) error { return fmt.Errorf("write_files[%d] %s: %w", it.index, it.path, err) }
	if err := root.MkdirAllOwned(path.Dir(it.path), 0o755, owner); err != nil {
		return fail(err)
	}
	if it.append {
		// cloud-init sets mode and owner on an existing file too.
		if err := root.AppendFileOwned(it.path, it.content, it.perm, owner); err != nil {
			return fail(err)
		}
		return nil
	}
	// WriteFile sets the mode after the owner, so setuid and setgid stay.
	if err := root.WriteFile(it.path, it.content, it.perm, &owner); err != nil {
		return fail(err)
	}
	return nil
}

// pendingItem is an item left for the deferred pass: index and path only,
// never content (it may be a secret).
type pendingItem struct {
	Index int    `json:"index"`
	Path  string `json:"path"`
}

// pendingFile is kept in the instance's state directory, so a crash between
// the stages still leaves it for the deferred pass on the next boot.
const pendingFile = "write_files.deferred.json"

func pendingPath(env *modules.Env) (string, error) {
	if env.Instance == nil || env.Instance.InstanceID == "" {
		return "", errors.New("no instance id to record deferred items under")
	}
	return path.Join(state.StateDir, "instances", env.Instance.InstanceID, pendingFile), nil
}

// savePending records items for the deferred pass; none removes the record.
func savePending(env *modules.Env, items []pendingItem) error {
	p, err := pendingPath(env)
	if err != nil {
		if len(items) == 0 {
			return nil
		}
		return fmt.Errorf("deferring %d item(s) whose owner is missing: %w", len(items), err)
	}
	if len(items) == 0 {
		if err := env.Root.Remove(p); err != nil {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(struct {
		Items []pendingItem `json:"items"`
	}{items}, "", "  ")
	if err != nil {
		return err
	}
	// The state directory is 0700; create it so only when the store has not.
	if dir := path.Dir(p); !exists(env.Root, dir) {
		if err := env.Root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if err := env.Root.WriteFile(p, append(data, '\n'), 0o600, nil); err != nil {
		return fmt.Errorf("recording deferred items: %w", err)
	}
	return nil
}

func loadPending(env *modules.Env) ([]pendingItem, error) {
	p, err := pendingPath(env)
	if err != nil {
		return nil, nil
	}
	data, err := env.Root.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("write_files_deferred: %w", err)
	}
	var rec struct {
		Items []pendingItem `json:"items"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("write_files_deferred: %s: %w", p, err)
	}
	return rec.Items, nil
}

func exists(root *sys.Root, p string) bool {
	ok, err := root.Exists(p)
	return ok && err == nil
}
