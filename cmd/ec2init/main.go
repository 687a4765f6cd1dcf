package main

import (
	_ "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	_ "github.com/coreos/go-systemd/v22/journal"
	_ "github.com/spf13/cobra"
	_ "go.uber.org/zap"
	_ "gopkg.in/yaml.v3"
)

func main() {}
