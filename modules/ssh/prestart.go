package ssh

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/modules"
	"github.com/ec2init/ec2init/modules/internal/accounts"
)

// preKeygenPrefix names the directories Start has ssh-keygen write into,
// one per instance and key type (.ec2init-prekeygen-<instance>-<type>),
// 0700 in /etc/ssh. Run installs from one only when it holds a finished
// key (preKeygenDone written last) for this instance, and removes them
// all when it is done; anything else is generated as without Start.
const (
	preKeygenPrefix = ".ec2init-prekeygen-"
	preKeygenDone   = "report"
)

// Start begins the host keys' generation when the stage starts, each type
// in its own ssh-keygen, so the slowest key (RSA) overlaps the modules
// that run before ssh (users_groups, write_files, ...). It decides as Run
// will: only a renewal that generates keys starts anything, and only the
// types Run would make.
func (m SSH) Start(ctx context.Context, env *modules.Env, cfg *config.CloudConfig) func() {
	if !accounts.HasAccounts(env.Root) {
		return nil
	}
	r := &run{env: env, log: env.Logger()}
	s, err := decode(cfg)
	if err != nil || (s.given != nil && hasPrivate(s.given)) || len(s.genKeyTypes) == 0 {
		return nil // Run reports the error; given keys are not generated
	}
	renew, _ := r.renewHostKeys()
	// stagingName "": no instance id that can name the staging.
	if !renew || r.stagingName("") == "" || !r.haveTool("ssh-keygen") {
		return nil
	}
	if ok, _ := env.Root.Exists("/etc/ssh"); !ok {
		return nil
	}
	dir, err := env.Root.Path("/etc/ssh")
	if err != nil {
		return nil
	}
	removeStaged(dir) // a crashed boot's, maybe another instance's
	types := s.genKeyTypes
	if !s.deleteKeys {
		types = r.missingKeys(types) // the image's keys stay: only the missing
	}
	if len(types) == 0 {
		return nil
	}
	var wg sync.WaitGroup
	for _, t := range types {
		tmp := filepath.Join(dir, r.stagingName(t))
		if err := os.Mkdir(tmp, 0o700); err != nil {
			continue // Run generates this type itself
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			report, err := r.generate(ctx, tmp, t, s.quietKeygen)
			if err == nil {
				err = os.WriteFile(filepath.Join(tmp, preKeygenDone), []byte(report), 0o600)
			}
			if err != nil {
				if !errors.Is(err, errUnknownKeyType) {
					r.log.Info("host key not generated ahead; ssh makes it", zap.String("type", t), zap.Error(err))
				}
				os.RemoveAll(tmp)
			}
		}()
	}
	r.log.Info("host keys generating ahead of the ssh module", zap.Strings("types", types))
	return wg.Wait
}

// staged is the directory holding the key of type t Start finished for
// this instance, and ssh-keygen's report; "" when there is none.
func (r *run) staged(dir, t string) (string, string) {
	name := r.stagingName(t)
	if name == "" {
		return "", ""
	}
	tmp := filepath.Join(dir, name)
	report, err := os.ReadFile(filepath.Join(tmp, preKeygenDone))
	if err != nil {
		return "", ""
	}
	return tmp, string(report)
}

// stagingName is the name of Start's directory for this instance's key
// of type t in /etc/ssh; "" when the instance id cannot name one.
func (r *run) stagingName(t string) string {
	id := r.instanceID()
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return ""
	}
	return preKeygenPrefix + id + "-" + t
}

// removeStaged removes every directory Start made in dir.
func removeStaged(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, preKeygenPrefix+"*"))
	for _, d := range old {
		os.RemoveAll(d)
	}
}
