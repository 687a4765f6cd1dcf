package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

func newIMDSCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "imds",
		Short: "The IMDS simulator: try user data and metadata tools without AWS",
	}
	cmd.AddCommand(newIMDSServeCommand(e))
	return cmd
}

// imdsServeOptions are imds serve's flags.
type imdsServeOptions struct {
	addr, data, fail string
	latency          time.Duration
	allowV1, hang    bool
}

func newIMDSServeCommand(e *env) *cobra.Command {
	var o imdsServeOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a metadata tree over HTTP with IMDSv2 semantics",
		Long: "Serve a metadata tree (YAML or JSON, or the built-in example instance) with the\n" +
			"real service's semantics: session tokens, listings, 404s, dated API versions.\n" +
			"Faults can be injected for testing clients.",
		Example: "  ec2init imds serve --addr 127.0.0.1:1338\n" +
			"  AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338 ec2init metadata --all",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIMDSServe(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:1338", "address to listen on")
	f.StringVar(&o.data, "data", "", "metadata tree file, YAML or JSON (default: a built-in example instance)")
	f.DurationVar(&o.latency, "latency", 0, "delay added to every request")
	f.StringVar(&o.fail, "fail", "", "fail the first N metadata requests with STATUS, as N:STATUS (e.g. 3:503)")
	f.BoolVar(&o.allowV1, "allow-v1", false, "serve requests without a session token (IMDSv1)")
	f.BoolVar(&o.hang, "hang", false, "accept requests but never answer")
	return cmd
}

// runIMDSServe serves the simulator until ctx ends, saying where it listens.
func runIMDSServe(ctx context.Context, o imdsServeOptions, out io.Writer) error {
	opts := imdssim.Options{AllowV1: o.allowV1, Latency: o.latency}
	if o.data != "" {
		tree, err := imdssim.LoadFile(o.data)
		if err != nil {
			return err
		}
		opts.Tree = tree
	}
	n, status := 0, 0
	if o.fail != "" {
		var err error
		if n, status, err = imdssim.ParseFail(o.fail); err != nil {
			return fmt.Errorf("--fail: %w", err)
		}
	}
	sim := imdssim.New(opts)
	url, err := sim.Start(o.addr)
	if err != nil {
		return fmt.Errorf("imds serve: %w", err)
	}
	defer sim.Close()
	if n > 0 {
		sim.FailNext(n, status)
	}
	sim.Hang(o.hang)
	fmt.Fprintf(out, "IMDS simulator listening on %s\n", url)
	<-ctx.Done()
	return nil
}
