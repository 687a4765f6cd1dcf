package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/ec2metadata"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/sys"
)

func newMetadataCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "metadata [ec2-metadata options]",
		Short: "Print instance metadata; a drop-in for Amazon Linux's ec2-metadata",
		Long: "Print instance metadata exactly as Amazon Linux's ec2-metadata prints it, for the\n" +
			"same options (see --help), plus --json, --tree and --facts.",
		// ec2-metadata's options are getopt's, not cobra's: -h is
		// --local-hostname and options print in the order given.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMetadata(cmd.Context(), e, args, cmd.OutOrStdout())
		},
	}
}

func runMetadata(ctx context.Context, e *env, argv []string, stdout io.Writer) error {
	args, err := ec2metadata.Parse(argv)
	if err != nil {
		// getopt's wording, then the script's own line.
		return &exitError{code: 1, msg: "ec2-metadata: " + err.Error() + "\nTerminating..."}
	}
	if args.Help {
		_, err := io.WriteString(stdout, ec2metadata.Help+ec2metadata.ExtensionsHelp)
		return err
	}
	if args.Endpoint != "" {
		e.endpoint = args.Endpoint
	}
	client, err := e.imdsClient(func(c *imds.Config) {
		c.AllowV1 = c.AllowV1 || args.AllowV1
		// An interactive command: fail in seconds off EC2, not minutes.
		if c.MaxAttempts == 0 {
			c.MaxAttempts = 3
		}
		if c.RequestTimeout == 0 {
			c.RequestTimeout = time.Second
		}
		// As root (a boot's scripts calling ec2-metadata again and again),
		// the session token the boot shares, kept for its endpoint only.
		if os.Geteuid() == 0 {
			*c = agent.IMDSConfig(e.root, *c)
		}
	})
	if err != nil {
		return err
	}
	switch {
	case args.JSON:
		in, err := client.Instance(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	case args.Tree:
		tree, err := client.Crawl(ctx)
		if err != nil {
			return err
		}
		return ec2metadata.WriteTree(stdout, tree)
	case args.Facts:
		in, err := client.Instance(ctx)
		if err != nil {
			return err
		}
		devs, err := sys.NetDevs("/sys")
		if err != nil {
			return err
		}
		return ec2metadata.WriteFacts(stdout, in, devs)
	}
	out, err := ec2metadata.Render(ctx, client, imds.IsTokenError, args)
	if errors.Is(err, ec2metadata.ErrNoToken) {
		return &exitError{code: 1, msg: ec2metadata.NoTokenMessage}
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
