package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ec2init/ec2init/agent/imds/imdssim"
)

func TestControl(t *testing.T) {
	tests := []struct {
		name, method, target string
		wantStatus           int
		// check inspects the simulator after the request.
		check func(t *testing.T, sim *imdssim.Server)
	}{
		{
			name: "new instance id, in meta-data and the identity document", method: http.MethodPost,
			target: "/instance-id?id=i-0bench", wantStatus: http.StatusOK,
			check: func(t *testing.T, sim *imdssim.Server) {
				tree := sim.Tree()
				if v, _, _ := tree.Get("meta-data/instance-id"); v != "i-0bench" {
					t.Errorf("meta-data/instance-id = %q", v)
				}
				doc, _, _ := tree.Get("dynamic/instance-identity/document")
				var fields map[string]any
				if err := json.Unmarshal([]byte(doc), &fields); err != nil || fields["instanceId"] != "i-0bench" || fields["region"] != "us-east-1" {
					t.Errorf("identity document %s (%v): want instanceId changed, the rest kept", doc, err)
				}
			},
		},
		{name: "instance id missing", method: http.MethodPost, target: "/instance-id", wantStatus: http.StatusBadRequest},
		{name: "latency", method: http.MethodPost, target: "/latency?d=1ms", wantStatus: http.StatusOK},
		{name: "latency not a duration", method: http.MethodPost, target: "/latency?d=fast", wantStatus: http.StatusBadRequest},
		{name: "latency negative", method: http.MethodPost, target: "/latency?d=-1ms", wantStatus: http.StatusBadRequest},
		{name: "stats wants GET", method: http.MethodPost, target: "/stats", wantStatus: http.StatusMethodNotAllowed},
		{name: "reset wants POST", method: http.MethodGet, target: "/reset", wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := imdssim.New(imdssim.Options{})
			defer sim.Close()
			rec := httptest.NewRecorder()
			controlHandler(sim, &requestLog{}).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d (%s)", tt.method, tt.target, rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.check != nil {
				tt.check(t, sim)
			}
		})
	}
}

// TestCountAndReset: the counter a benchmark reads sees the client's
// requests, latency applies to them, and reset starts over.
func TestCountAndReset(t *testing.T) {
	reqLog := &requestLog{}
	sim, url := imdssim.Start(t, imdssim.Options{AllowV1: true, Logger: reqLog.add})
	control := httptest.NewServer(controlHandler(sim, reqLog))
	defer control.Close()

	post := func(path string) {
		t.Helper()
		resp, err := http.Post(control.URL+path, "", nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(control.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	// requests returns the counter's total and the log's entries.
	requests := func() (int, []request) {
		t.Helper()
		var st imdssim.Stats
		var log []request
		get("/stats", &st)
		get("/requests", &log)
		return st.Requests, log
	}

	post("/latency?d=30ms")
	start := time.Now()
	for range 2 {
		resp, err := http.Get(url + "/latest/meta-data/instance-id")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(b), "i-") {
			t.Fatalf("instance-id: %q", b)
		}
	}
	if took := time.Since(start); took < 60*time.Millisecond {
		t.Errorf("two requests at 30ms latency took %v", took)
	}
	n, log := requests()
	if n != 2 || len(log) != 2 {
		t.Fatalf("after two requests: counter %d, log %v", n, log)
	}
	for _, r := range log {
		if r.Method != http.MethodGet || r.Path != "/latest/meta-data/instance-id" || r.Status != http.StatusOK {
			t.Errorf("logged %+v", r)
		}
		if at := time.UnixMicro(r.UnixMicro); at.Before(start) || at.After(time.Now()) {
			t.Errorf("logged at %v, outside the test's requests", at)
		}
	}
	if log[1].UnixMicro-log[0].UnixMicro < (30 * time.Millisecond).Microseconds() {
		t.Errorf("answers logged %d µs apart at 30ms latency", log[1].UnixMicro-log[0].UnixMicro)
	}
	post("/reset")
	if n, log := requests(); n != 0 || len(log) != 0 {
		t.Errorf("after reset: counter %d, log %v", n, log)
	}
}
