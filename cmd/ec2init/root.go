package main

import (
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/config"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/logging"
)

// env is what every subcommand shares: the global flags and what they
// resolve to.
type env struct {
	root     string
	bootID   string
	endpoint string
	logLevel string
	getenv   func(string) string
}

func newEnv(root string) *env {
	return &env{root: root, getenv: os.Getenv}
}

func newRootCommand() *cobra.Command {
	e := newEnv("/")
	root := &cobra.Command{
		Use:           "ec2init",
		Short:         "First-boot agent and metadata tool for Amazon EC2",
		Long:          "ec2init takes an EC2 instance from booted to configured (user data, cloud-config,\nsoftware), keeps watching its metadata, and answers operators' questions about both.",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&e.root, "root", "/", "prefix for every path ec2init reads or writes (tests, image preparation)")
	root.PersistentFlags().StringVar(&e.endpoint, "endpoint", "", "IMDS endpoint URL (default: $"+imds.EndpointEnv+", config imds.endpoint, "+imds.DefaultIPv4Endpoint+")")
	root.PersistentFlags().StringVar(&e.bootID, "boot-id", "", "pretend this is the boot with this id (simulating reboots; default: the kernel's)")
	_ = root.PersistentFlags().MarkHidden("boot-id")
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newMetadataCommand(e),
		newIMDSCommand(e),
		newDemoCommand(e),
		newBootCommand(e),
		newStatusCommand(e),
		newCleanCommand(e),
		newBakeCommand(e),
		newUserDataCommand(e),
		newSchemaCommand(e),
		newModulesCommand(),
		newDaemonCommand(e),
		newAnalyzeCommand(e),
		newCloudInitPerCommand(e),
		newMigrateCommand(e),
	)
	addManCommand(root)
	return root
}

func (e *env) logger() (*zap.Logger, error) {
	return logging.New(logging.Options{Level: e.logLevel})
}

// imdsClient builds the metadata client from flags, environment and the
// system config under --root, in that order of precedence.
func (e *env) imdsClient(tune func(*imds.Config)) (*imds.Client, error) {
	sys, err := config.LoadSystem(e.root)
	if err != nil {
		return nil, err
	}
	endpoint, _, err := imds.ResolveEndpoint(e.endpoint, sys.IMDS.Endpoint, sys.IMDS.EndpointMode, e.getenv)
	if err != nil {
		return nil, err
	}
	cfg := imds.Config{
		Endpoint:       endpoint,
		AllowV1:        sys.IMDS.AllowIMDSv1,
		RequestTimeout: sys.IMDS.RequestTimeout.Std(),
		CallTimeout:    sys.IMDS.CallTimeout.Std(),
		MaxAttempts:    sys.IMDS.MaxAttempts,
	}
	if tune != nil {
		tune(&cfg)
	}
	if cfg.Log == nil {
		// The client's warnings (IMDSv1 requests, rejected keys) reach
		// stderr, the journal under systemd, at least.
		log, err := e.logger()
		if err != nil {
			return nil, err
		}
		cfg.Log = log
	}
	return imds.New(cfg)
}
