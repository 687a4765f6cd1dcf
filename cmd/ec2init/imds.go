package main

import (
	"fmt"
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

func newIMDSServeCommand(e *env) *cobra.Command {
	var (
		addr, data, fail string
		latency          time.Duration
		allowV1, hang    bool
	)
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
			opts := imdssim.Options{AllowV1: allowV1, Latency: latency}
			if data != "" {
				tree, err := imdssim.LoadFile(data)
				if err != nil {
					return err
				}
				opts.Tree = tree
			}
			n, status := 0, 0
			if fail != "" {
				var err error
				if n, status, err = imdssim.ParseFail(fail); err != nil {
					return fmt.Errorf("--fail: %w", err)
				}
			}
			sim := imdssim.New(opts)
			url, err := sim.Start(addr)
			if err != nil {
				return fmt.Errorf("imds serve: %w", err)
			}
			defer sim.Close()
			if n > 0 {
				sim.FailNext(n, status)
			}
			sim.Hang(hang)
			fmt.Fprintf(cmd.OutOrStdout(), "IMDS simulator listening on %s\n", url)
			<-cmd.Context().Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:1338", "address to listen on")
	f.StringVar(&data, "data", "", "metadata tree file, YAML or JSON (default: a built-in example instance)")
	f.DurationVar(&latency, "latency", 0, "delay added to every request")
	f.StringVar(&fail, "fail", "", "fail the first N metadata requests with STATUS, as N:STATUS (e.g. 3:503)")
	f.BoolVar(&allowV1, "allow-v1", false, "serve requests without a session token (IMDSv1)")
	f.BoolVar(&hang, "hang", false, "accept requests but never answer")
	return cmd
}
