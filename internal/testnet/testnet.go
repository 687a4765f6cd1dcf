// Package testnet has network fixtures shared by tests: endpoints that
// fail the ways real misconfigurations do.
package testnet

import (
	"bufio"
	"net"
	"strings"
)

// TB is the part of testing.TB the fixtures need.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// ClosedPort returns a URL of a loopback port with nothing listening.
func ClosedPort(tb TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

// NotHTTP returns a URL of a TCP service that answers an HTTP request with
// an SSH banner, as when the endpoint points at the wrong port. It reads the
// whole request first, so clients always see the bad response rather than a
// reset.
func NotHTTP(tb TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil || strings.TrimSpace(line) == "" {
						break
					}
				}
				conn.Write([]byte("SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n"))
			}()
		}
	}()
	return "http://" + l.Addr().String()
}
