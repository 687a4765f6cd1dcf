// Command benchsim is the IMDS simulator as the side-by-side benchmarks
// need it: the same server `ec2init imds serve` runs, plus a control
// listener on a second loopback port so a script can count the requests a
// client made (GET /stats; GET /requests, each with the wall-clock time it
// was answered, to count those before a moment such as a unit's READY;
// POST /reset), launch a "new instance" between runs
// (POST /instance-id?id=...) and change the injected latency
// (POST /latency?d=1ms) without restarting it.
//
// Usage: benchsim --addr 127.0.0.1:PORT --control 127.0.0.1:PORT2
// [--user-data FILE] [--latency D] [--allow-v1] [--data TREE]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchsim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("benchsim", flag.ContinueOnError)
	addr := fl.String("addr", "127.0.0.1:1338", "IMDS address to listen on")
	control := fl.String("control", "127.0.0.1:1339", "control address (stats, instance id, latency)")
	userData := fl.String("user-data", "", "file whose bytes are served as the user data")
	data := fl.String("data", "", "metadata tree file (default: the built-in example instance)")
	latency := fl.Duration("latency", 0, "delay added to every request")
	allowV1 := fl.Bool("allow-v1", false, "serve requests without a session token (IMDSv1)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	log := &requestLog{}
	opts := imdssim.Options{AllowV1: *allowV1, Latency: *latency, Logger: log.add}
	if *data != "" {
		tree, err := imdssim.LoadFile(*data)
		if err != nil {
			return err
		}
		opts.Tree = tree
	}
	sim := imdssim.New(opts)
	defer sim.Close()
	if *userData != "" {
		b, err := os.ReadFile(*userData)
		if err != nil {
			return fmt.Errorf("--user-data: %w", err)
		}
		sim.SetUserData(b)
	}
	url, err := sim.Start(*addr)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *control)
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}
	srv := &http.Server{Handler: controlHandler(sim, log), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	fmt.Fprintf(stdout, "IMDS simulator on %s, control on http://%s\n", url, l.Addr())

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// request is one answered request, as GET /requests lists it.
type request struct {
	// UnixMicro is when the answer was sent, on the wall clock a
	// container on the same kernel shares.
	UnixMicro int64  `json:"t"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
}

// requestLog records every request the simulator answers, in order.
type requestLog struct {
	mu   sync.Mutex
	reqs []request
}

func (l *requestLog) add(method, path string, status int) {
	r := request{UnixMicro: time.Now().UnixMicro(), Method: method, Path: path, Status: status}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
}

func (l *requestLog) snapshot() []request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]request{}, l.reqs...)
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = nil
}

// controlHandler serves the control API for one simulator and its log.
func controlHandler(sim *imdssim.Server, log *requestLog) http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, sim.Stats())
	})
	mux.HandleFunc("GET /requests", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, log.snapshot())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		sim.ResetStats()
		log.reset()
	})
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "latency: want d=DURATION (e.g. 1ms)", http.StatusBadRequest)
			return
		}
		sim.SetLatency(d)
	})
	mux.HandleFunc("POST /instance-id", func(w http.ResponseWriter, r *http.Request) {
		if err := setInstanceID(sim, r.URL.Query().Get("id")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	return mux
}

// setInstanceID makes the simulator a new instance: the id changes both in
// meta-data and in the identity document, as clients read one or the other.
func setInstanceID(sim *imdssim.Server, id string) error {
	if id == "" {
		return errors.New("instance-id: want id=i-...")
	}
	const docPath = "dynamic/instance-identity/document"
	sim.Set("meta-data/instance-id", id)
	doc, _, ok := sim.Tree().Get(docPath)
	if !ok {
		return nil
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(doc), &fields); err != nil {
		return fmt.Errorf("instance-id: %s is not JSON: %w", docPath, err)
	}
	fields["instanceId"] = id
	b, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return fmt.Errorf("instance-id: %w", err)
	}
	sim.Set(docPath, string(b))
	return nil
}
