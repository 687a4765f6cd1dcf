package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ec2init/ec2init/agent"
	"github.com/ec2init/ec2init/agent/state"
	"github.com/ec2init/ec2init/agent/sys"
	"github.com/ec2init/ec2init/internal/bootsock"
	"github.com/ec2init/ec2init/modules"
)

// The one-process boot (issue #15). ec2init-main.service starts
// `ec2init boot --serve` before the local stage: one process that opens
// the boot once (agent.Session) and runs each stage when that stage's unit
// asks for it over bootSocket. The stage units still run
// `ec2init boot --stage S`, so their ordering against the network, sshd
// and multi-user is the units' as before; that command asks the server
// and waits for its answer, and runs the stage itself when no server
// listens (ec2init-main disabled, or gone).

// bootSocket is the server's socket: root's alone (0600), in /run.
const bootSocket = bootsock.Path

// runBootServer is `ec2init boot --serve`: READY once it listens, then one
// request per connection, until the final stage has run or ctx ends.
func runBootServer(ctx context.Context, e *env, o bootOptions, console io.Writer) error {
	opts, closeLog, err := bootAgentOptions(e, o, console)
	if err != nil {
		return err
	}
	defer closeLog()
	sess, err := agent.OpenSession(ctx, opts)
	if err != nil {
		return err
	}
	defer sess.Close()
	l, path, err := listenBootSocket(e.root)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer l.Close()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	notify := o.notify
	if notify == nil {
		notify = sdNotify
	}
	notify("READY=1\nSTATUS=waiting for the stages")
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped: the stages not run are the units' to run
			}
			return fmt.Errorf("boot server: %w", err)
		}
		final := serveStages(ctx, sess, conn, opts.Log)
		conn.Close()
		if final {
			return nil
		}
	}
}

// listenBootSocket listens on bootSocket under root, replacing a stale
// socket, mode 0600.
func listenBootSocket(root string) (*net.UnixListener, string, error) {
	r, err := sys.NewRoot(root)
	if err != nil {
		return nil, "", err
	}
	if err := r.MkdirAll("/run/ec2init", 0o755); err != nil {
		return nil, "", err
	}
	path, err := r.Path(bootSocket)
	if err != nil {
		return nil, "", err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("boot server: %w", err)
	}
	// The umask leaves the socket unwritable by others until the chmod:
	// connecting needs write permission.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, "", fmt.Errorf("boot server: %w", err)
	}
	l.SetUnlinkOnClose(false) // removed by the caller, after Close
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("boot server: %w", err)
	}
	return l, path, nil
}

// serveStages answers one request: the stages named on its first line,
// run in the session. It reports whether the boot's last stage was asked
// for: the server's work is then done.
func serveStages(ctx context.Context, sess *agent.Session, conn *net.UnixConn, log *zap.Logger) bool {
	reply := func(r bootsock.Reply) {
		if err := bootsock.Send(conn, r); err != nil {
			log.Warn("boot server: reply", zap.Error(err))
		}
	}
	if uid, err := peerUID(conn); err != nil || (uid != 0 && uid != os.Geteuid()) {
		// Only root (or, in tests, the server's own user) runs a boot.
		reply(bootsock.Reply{Error: "not allowed"})
		return false
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, 256)).ReadString('\n')
	conn.SetReadDeadline(time.Time{})
	stages, perr := modules.ParseStages(strings.TrimSpace(line))
	if err != nil || perr != nil {
		reply(bootsock.Reply{Error: fmt.Sprintf("boot server: bad request %q", strings.TrimSpace(line))})
		return false
	}
	log.Info("boot server: stages asked", zap.String("stages", strings.TrimSpace(line)))
	st, err := sess.Run(ctx, stages)
	r := bootsock.Reply{State: st.State}
	if err != nil {
		r.Error = err.Error()
	}
	reply(r)
	for _, s := range stages {
		if s == modules.StageFinal {
			return true
		}
	}
	return false
}

// peerUID is the uid of the process at the other end of conn.
func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	uid := -1
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr == nil {
			uid = int(cred.Uid)
		}
	}); err != nil {
		return -1, err
	}
	return uid, credErr
}

// runStagesOrAsk runs o's stages in the boot server when one listens, and
// here otherwise (as before ec2init-main existed). A stage with its own
// flags (--chroot, --script-timeout, ...) always runs here: the server
// has its unit's.
func runStagesOrAsk(ctx context.Context, e *env, o bootOptions, console io.Writer) (state.Status, error) {
	if o.chroot || o.rerunInterrupted || o.scriptTimeout != 0 || o.identifyDeadlineSet {
		return runStages(ctx, e, o, console)
	}
	if st, asked, err := askBootServer(ctx, e.root, o.stage); asked {
		return state.Status{State: st}, err
	}
	return runStages(ctx, e, o, console)
}

// askBootServer asks the server under root to run stages and waits for its
// answer; asked is false when no server answered (bootsock.Ask), and the
// caller runs the stages itself.
func askBootServer(ctx context.Context, root, stages string) (st string, asked bool, err error) {
	r, err := sys.NewRoot(root)
	if err != nil {
		return "", false, nil
	}
	path, err := r.Path(bootSocket)
	if err != nil {
		return "", false, nil
	}
	rep, asked := bootsock.Ask(ctx, path, stages)
	if asked && rep.Error != "" {
		return rep.State, true, errors.New(rep.Error)
	}
	return rep.State, asked, nil
}
