package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ec2init/ec2init/agent/bounded"
	"github.com/ec2init/ec2init/agent/civiews"
	"github.com/ec2init/ec2init/agent/userdata"
)

const (
	ciUserDataTxt   = civiews.InstanceLink + "/user-data.txt"
	ciVendorDataTxt = civiews.InstanceLink + "/vendor-data.txt"
	ciCombinedCfg   = civiews.RunDir + "/combined-cloud-config.json"
)

func ciQueryParser(prog string) *ciParser {
	return &ciParser{prog: prog,
		desc: "Query standardized instance metadata provided to machine, returning a JSON structure.",
		opts: []ciOpt{
			{names: []string{"-d", "--debug"}, dest: "debug", flag: true, help: "Add verbose messages during template render"},
			{names: []string{"-i", "--instance-data"}, dest: "instance_data", help: "Path to instance-data.json file. Default is " + civiews.InstanceDataFile},
			{names: []string{"-l", "--list-keys"}, dest: "list_keys", flag: true, help: "List query keys available at the provided instance-data <varname>."},
			{names: []string{"-u", "--user-data"}, dest: "user_data", help: "Path to user-data file. Default is " + ciUserDataTxt},
			{names: []string{"-v", "--vendor-data"}, dest: "vendor_data", help: "Path to vendor-data file. Default is " + ciVendorDataTxt},
			{names: []string{"-a", "--all"}, dest: "dump_all", flag: true, help: "Dump all available instance-data"},
			{names: []string{"-f", "--format"}, dest: "format", help: `Optionally specify a custom output format string. Any instance-data variable can be specified between double-curly braces. For example -f "{{ v2.cloud_name }}"`},
		},
		pos: []ciPos{{name: "varname", optional: true, help: "A dot-delimited specific variable to query from instance-data. For example: v1.local_hostname."}},
	}
}

// ciQuery is `cloud-init query`.
func ciQuery(e *env, c ciIO, args []string) error {
	p := ciQueryParser(c.prog)
	a, done, err := parseSub(c, p, args)
	if done {
		return err
	}
	varname := a.first("varname")
	if !a.flag("list_keys") && varname == "" && !a.has("format") && !a.flag("dump_all") {
		c.logf("query.py", "ERROR", "Expected one of the options: --all, --format, --list-keys or varname")
		p.writeHelp(c.stdout)
		return &exitError{code: 1}
	}
	data, err := ciReadInstanceData(e, c, a.val("instance_data"), a.val("user_data"), a.val("vendor_data"))
	if err != nil {
		return &exitError{code: 1}
	}
	if a.has("format") {
		return ciRenderFormat(c, data, a.val("format"))
	}
	var response any = ciJinjaData(data)
	if varname != "" {
		if response, err = ciLookup(response.(map[string]any), userdata.VarsMap(data).TemplateData(), varname); err != nil {
			c.logf("query.py", "ERROR", "%s", err)
			return &exitError{code: 1}
		}
	}
	if a.flag("list_keys") {
		m, ok := response.(map[string]any)
		if !ok {
			c.logf("query.py", "ERROR", "--list-keys provided but '%s' is not a dict", varname)
			return &exitError{code: 1}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		_, err := fmt.Fprintln(c.stdout, strings.Join(keys, "\n"))
		return err
	}
	if s, ok := response.(string); ok {
		_, err := fmt.Fprintln(c.stdout, s)
		return err
	}
	out, err := pyJSON(response, " ")
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(out)
	return err
}

// ciReadInstanceData is query's instance data: root reads the sensitive
// file (the redacted one when it is missing), anyone else the redacted
// one; with userdata, vendordata and combined_cloud_config added, as
// values for root and as where to find them for anyone else.
func ciReadInstanceData(e *env, c ciIO, instanceData, userData, vendorData string) (map[string]any, error) {
	root, err := ciRoot(e)
	if err != nil {
		c.logf("query.py", "ERROR", "%v", err)
		return nil, err
	}
	// A path given on the command line is the caller's; defaults are under
	// the root prefix.
	read := func(p string, given bool) ([]byte, error) {
		if given {
			return os.ReadFile(p)
		}
		return root.ReadFile(p)
	}
	file, given := instanceData, instanceData != ""
	if !given {
		file = civiews.InstanceDataFile
		if c.uid == 0 {
			if ok, _ := root.Exists(civiews.InstanceDataSensitiveFile); ok {
				file = civiews.InstanceDataSensitiveFile
			} else {
				c.logf("query.py", "WARNING", "Missing root-readable %s. Using redacted %s instead.", civiews.InstanceDataSensitiveFile, civiews.InstanceDataFile)
			}
		}
	}
	raw, err := read(file, given)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			c.logf("query.py", "ERROR", "No read permission on '%s'. Try sudo", file)
		} else {
			c.logf("query.py", "ERROR", "Missing instance-data file: %s", file)
		}
		return nil, err
	}
	var data map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		c.logf("query.py", "ERROR", "%s: %v", file, err)
		return nil, err
	}
	udFile, vdFile := userData, vendorData
	if udFile == "" {
		udFile = ciUserDataTxt
	}
	if vdFile == "" {
		vdFile = ciVendorDataTxt
	}
	if c.uid != 0 {
		for k, f := range map[string]string{"userdata": udFile, "vendordata": vdFile, "combined_cloud_config": ciCombinedCfg} {
			data[k] = fmt.Sprintf("<%s> file:%s", civiews.RedactedValue, f)
		}
		return data, nil
	}
	data["userdata"] = ciLoadUserData(read, udFile, userData != "")
	data["vendordata"] = ciLoadUserData(read, vdFile, vendorData != "")
	data["combined_cloud_config"] = nil
	if b, err := root.ReadFile(ciCombinedCfg); err == nil {
		var cfg any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if d.Decode(&cfg) == nil {
			data["combined_cloud_config"] = cfg
		}
	}
	return data, nil
}

// ciLoadUserData is query's load_userdata: the text, gunzipped if it is
// gzip, "" when missing; what is neither text nor gzip is base64 with
// cloud-init's "ci-b64:" prefix.
func ciLoadUserData(read func(string, bool) ([]byte, error), p string, given bool) any {
	b, err := read(p, given)
	if err != nil {
		return ""
	}
	if utf8.Valid(b) {
		return string(b)
	}
	if out, err := bounded.Gunzip(b, 64<<20, "user data"); err == nil && utf8.Valid(out) {
		return string(out)
	}
	return "ci-b64:" + base64.StdEncoding.EncodeToString(b)
}

// ciJinjaData is cloud-init's convert_jinja_instance_data without
// aliases: the data, with the keys of v1 (any vN) copied to the top.
func ciJinjaData(data map[string]any) map[string]any {
	out := make(map[string]any, len(data))
	keys := sortedKeys(data)
	for _, k := range keys {
		out[k] = data[k]
	}
	for _, k := range keys {
		if sub, ok := data[k].(map[string]any); ok && ciIsVersionKey(k) {
			for sk, sv := range sub {
				out[sk] = sv
			}
		}
	}
	return out
}

func ciIsVersionKey(k string) bool {
	return len(k) > 1 && k[0] == 'v' && strings.Trim(k[1:], "0123456789") == ""
}

// ciAlias is a key's jinja alias ('-', '.' and other operators as '_').
func ciAlias(k string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("-.+*/%~|()[]{}<>=!,:;", r) {
			return '_'
		}
		return r
	}, k)
}

// ciLookup walks the dotted varname through the data, a part matching a
// key or its underscore alias, with query's errors.
func ciLookup(plain, aliased map[string]any, varname string) (any, error) {
	var resp any = plain
	var withAliases any = aliased
	walked := ""
	for _, part := range strings.Split(varname, ".") {
		am, _ := withAliases.(map[string]any)
		next, ok := am[part]
		if !ok {
			if walked != "" {
				return nil, fmt.Errorf("instance-data '%s' has no '%s'", walked, part)
			}
			return nil, fmt.Errorf("Undefined instance-data key '%s'", varname) //nolint:staticcheck // cloud-init's message
		}
		withAliases = next
		if rm, ok := resp.(map[string]any); ok {
			if v, ok := rm[part]; ok {
				resp = v
			} else {
				for _, k := range sortedKeys(rm) {
					if ciAlias(k) == part {
						resp = rm[k]
						break
					}
				}
			}
		}
		if walked != "" {
			walked += "."
		}
		walked += part
	}
	return resp, nil
}

// ciRenderFormat renders --format as a jinja template over the instance
// data, in the user data's sandbox.
func ciRenderFormat(c ciIO, data map[string]any, format string) error {
	payload := "## template: jinja\n" + format
	res, err := userdata.Parse([]byte(payload), userdata.Options{Vars: userdata.VarsMap(data)})
	if err != nil {
		c.logf("query.py", "ERROR", "Failed to render templated data. %v", err)
		return &exitError{code: 1}
	}
	for _, w := range res.Warnings {
		if w.Code == userdata.WarnUndefined {
			_, names, _ := strings.Cut(w.Message, "): ")
			c.logf("jinja_template.py", "WARNING", "Could not render jinja template variables in file 'query command line': %s", names)
		}
	}
	if len(res.Parts) == 0 || len(res.Parts[0].Body) == 0 {
		return &exitError{code: 1}
	}
	_, err = fmt.Fprintln(c.stdout, string(res.Parts[0].Body))
	return err
}
