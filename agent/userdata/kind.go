package userdata

import "fmt"

// Kind is what a part is for, derived from its content type.
type Kind int

// The kinds of part cloud-init knows. KindCloudConfigArchive and KindInclude*
// are what the header says; Parse expands archives and Resolve replaces
// includes, so they only remain in results that were not resolved.
const (
	KindUnknown            Kind = iota // no handler: a Warning says why
	KindScript                         // text/x-shellscript: run once per instance
	KindScriptPerBoot                  // text/x-shellscript-per-boot
	KindScriptPerInstance              // text/x-shellscript-per-instance
	KindScriptPerOnce                  // text/x-shellscript-per-once
	KindCloudConfig                    // text/cloud-config
	KindCloudConfigJSONP               // text/cloud-config-jsonp: a JSON patch of the merged config
	KindBoothook                       // text/cloud-boothook: run early, every boot
	KindInclude                        // text/x-include-url: URLs whose content is more user data
	KindIncludeOnce                    // text/x-include-once-url
	KindCloudConfigArchive             // text/cloud-config-archive: a YAML list of parts
	KindJinja                          // text/jinja2: not rendered yet (Options.Vars was nil)
	KindPartHandler                    // text/part-handler: Python code; recognised, not supported
)

var kindNames = [...]string{
	KindUnknown:            "unknown",
	KindScript:             "script",
	KindScriptPerBoot:      "script-per-boot",
	KindScriptPerInstance:  "script-per-instance",
	KindScriptPerOnce:      "script-per-once",
	KindCloudConfig:        "cloud-config",
	KindCloudConfigJSONP:   "cloud-config-jsonp",
	KindBoothook:           "boothook",
	KindInclude:            "include",
	KindIncludeOnce:        "include-once",
	KindCloudConfigArchive: "cloud-config-archive",
	KindJinja:              "jinja",
	KindPartHandler:        "part-handler",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MarshalText makes kinds readable in result.json.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, name := range kindNames {
		if name == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("userdata: unknown kind %q", b)
}

// IsScript reports whether the part is a script the agent executes as is.
func (k Kind) IsScript() bool {
	return k == KindScript || k == KindScriptPerBoot || k == KindScriptPerInstance || k == KindScriptPerOnce
}

// Content types cloud-init gives meaning to.
const (
	TypeScript            = "text/x-shellscript"
	TypeScriptPerBoot     = "text/x-shellscript-per-boot"
	TypeScriptPerInstance = "text/x-shellscript-per-instance"
	TypeScriptPerOnce     = "text/x-shellscript-per-once"
	TypeCloudConfig       = "text/cloud-config"
	TypeCloudConfigJSONP  = "text/cloud-config-jsonp"
	TypeBoothook          = "text/cloud-boothook"
	TypeInclude           = "text/x-include-url"
	TypeIncludeOnce       = "text/x-include-once-url"
	TypeArchive           = "text/cloud-config-archive"
	TypeJinja             = "text/jinja2"
	TypePartHandler       = "text/part-handler"
	TypePlain             = "text/plain"
	// TypeNotMultipart is what cloud-init calls user data that is not MIME and
	// has no recognised first line.
	TypeNotMultipart = "text/x-not-multipart"
	TypeOctetStream  = "application/octet-stream"
)

var kindByType = map[string]Kind{
	TypeScript:            KindScript,
	TypeScriptPerBoot:     KindScriptPerBoot,
	TypeScriptPerInstance: KindScriptPerInstance,
	TypeScriptPerOnce:     KindScriptPerOnce,
	TypeCloudConfig:       KindCloudConfig,
	TypeCloudConfigJSONP:  KindCloudConfigJSONP,
	TypeBoothook:          KindBoothook,
	TypeInclude:           KindInclude,
	TypeIncludeOnce:       KindIncludeOnce,
	TypeArchive:           KindCloudConfigArchive,
	TypeJinja:             KindJinja,
	TypePartHandler:       KindPartHandler,
}

// KindOf maps a normalized content type to its kind.
func KindOf(contentType string) Kind { return kindByType[contentType] }
