package config

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, body, key, want string
	}{
		{"user keys", "users:\n  - name: bob\n    ssh-authorized-keys: [k1]\n    lock-passwd: false\n    primary-group: ops\n",
			"users", "- lock_passwd: false\n  name: bob\n  primary_group: ops\n  ssh_authorized_keys:\n    - k1"},
		{"both spellings: the later wins", "users:\n  - name: bob\n    lock_passwd: true\n    lock-passwd: false\n",
			"users", "- lock_passwd: false\n  name: bob"},
		{"users mapping form", "users:\n  bob:\n    ssh-import-id: [gh:bob]\n",
			"users", "bob:\n    ssh_import_id:\n        - gh:bob"},
		{"yum repo keys", "yum_repos:\n  my-repo:\n    Base-URL: http://x\n    gpg-check: true\n",
			"yum_repos", "my-repo:\n    base_url: http://x\n    gpg_check: true"},
		{"module lists", "cloud_final_modules:\n  - [scripts-user, always]\n  - cc_final-message\n  - {name: power-state-change}\n",
			"cloud_final_modules", "- - scripts_user\n  - always\n- final_message\n- name: power_state_change"},
		{"top-level keys stay", "write-files: []\n", "write-files", "[]"},
		{"groups are names, not keys", "groups:\n  - my-group: [a-b]\n", "groups", "- my-group:\n    - a-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Merge(mustDoc(t, "u", tt.body))
			if got := render(t, c, tt.key); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
