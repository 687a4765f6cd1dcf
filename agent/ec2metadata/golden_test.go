package ec2metadata_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2init/ec2init/agent/ec2metadata"
	"github.com/ec2init/ec2init/agent/imds"
	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

// TestGolden compares ec2init's output with what the real ec2-metadata
// printed for the same options and the same metadata (testdata/golden).
func TestGolden(t *testing.T) {
	_, url := imdssim.Start(t, imdssim.Options{})
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "golden", "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		name, opts, ok := strings.Cut(sc.Text(), "|")
		if !ok {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "golden", name+".golden"))
			if err != nil {
				t.Fatal(err)
			}
			args, err := ec2metadata.Parse(strings.Fields(opts))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ec2metadata.Render(context.Background(), client, imds.IsTokenError, args)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("ec2-metadata %s:\n--- got\n%s\n--- want\n%s", opts, got, want)
			}
		})
	}
	if n < 30 {
		t.Fatalf("only %d golden cases", n)
	}
}

func TestNoToken(t *testing.T) {
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.FailTokenNext(1000, 403)
	client, err := imds.New(imds.Config{Endpoint: url, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	args, _ := ec2metadata.Parse([]string{"-i"})
	if _, err := ec2metadata.Render(context.Background(), client, imds.IsTokenError, args); err != ec2metadata.ErrNoToken {
		t.Fatalf("err = %v, want ErrNoToken", err)
	}
}

func TestBareKeyListing(t *testing.T) {
	// Some IMDS mocks list public keys as "0/" rather than "0=name".
	sim, url := imdssim.Start(t, imdssim.Options{})
	sim.Delete("meta-data/public-keys")
	// A real key: Instance keeps only keys that are keys.
	sim.Set("meta-data/public-keys/0/openssh-key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzQVFf8SEsTOaSh9k6xXNw0lvUVChO60dzmWnknVXPk k")
	client, err := imds.New(imds.Config{Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	args, _ := ec2metadata.Parse([]string{"-u"})
	got, err := ec2metadata.Render(context.Background(), client, imds.IsTokenError, args)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "public-keys: \nkeyname:0/\nindex:0/\n") {
		t.Errorf("got %q", got)
	}
	tree, err := client.Crawl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in, err := imds.InstanceFromTree(tree)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.PublicKeys) != 1 || in.PublicKeys[0].OpenSSHKey != "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzQVFf8SEsTOaSh9k6xXNw0lvUVChO60dzmWnknVXPk k" {
		t.Errorf("keys from a bare listing: %+v", in.PublicKeys)
	}
}
