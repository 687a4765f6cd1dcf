// A resumable download into a partial file, hashed as it is written.

package fetch

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ec2init/ec2init/agent/redact"
)

// meta is what a partial download needs to resume safely, kept next to it.
type meta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Total        int64  `json:"total"`
}

// download is one artifact's transfer into its partial file.
type download struct {
	f       *ArtifactFetcher
	name    string
	url     *url.URL
	rem     remote
	want    expected
	sig     *sigCheck
	partial string
	// signer names the key that verified sig.
	signer string

	file  *os.File
	w     *hashWriter
	meta  meta
	start time.Time
	// fresh counts bytes received over the network in this Fetch.
	fresh int64
	// restarted is set once a resumed download failed verification and
	// was started over from byte 0.
	restarted bool
	resumedAt int64
}

func (d *download) metaPath() string { return d.partial + ".json" }

func (d *download) run(ctx context.Context) (Artifact, error) {
	file, err := os.OpenFile(d.partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Artifact{}, fmt.Errorf("partial file: %w", err)
	}
	d.file = file
	defer func() {
		if d.file != nil {
			d.file.Close()
		}
	}()
	d.meta = meta{URL: redact.URL(d.url.String()), Total: -1}
	if b, err := os.ReadFile(d.metaPath()); err == nil {
		var m meta
		if json.Unmarshal(b, &m) == nil && m.URL == d.meta.URL {
			d.meta = m
		}
	}
	d.start = time.Now()
	d.w = &hashWriter{file: d.file, h: d.want.newHash(), off: -1, sig: d.sig}
	defer d.w.closeVerifier()
	attempts, err := d.f.retry.run(ctx, d.name, d.url, d.attempt)
	if err != nil {
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrSignature) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) {
			d.discard()
		}
		return Artifact{}, &Error{URL: redact.URL(d.url.String()), Attempts: attempts, Err: err}
	}
	return d.commit()
}

// attempt makes one request, from the end of the partial file, and ends
// with a complete file whose digest matched, or an error.
func (d *download) attempt(ctx context.Context, cancel context.CancelCauseFunc) (progressed bool, err error) {
	if err := d.sync(); err != nil {
		return false, err
	}
	have := d.w.off
	if have > 0 {
		d.resumedAt = have
	}
	if d.meta.Total >= 0 && have == d.meta.Total {
		// Complete from an earlier run that stopped before verifying.
		return false, d.verify()
	}
	timer := time.AfterFunc(d.f.opts.Timeout, func() { cancel(errIdle) })
	defer timer.Stop()
	resp, err := d.rem.open(ctx, d.url, have, validator{ETag: d.meta.ETag, LastModified: d.meta.LastModified})
	var rng *rangeError
	switch {
	case errors.As(err, &rng):
		if rng.total >= 0 && rng.total == have {
			return false, d.verify()
		}
		// The partial file is longer than the object, or the answer says
		// nothing useful: start over.
		d.meta.Total = -1
		return false, errors.Join(d.reset(), fmt.Errorf("range not satisfiable at %d: starting over", have))
	case errors.Is(err, errChanged):
		return false, errors.Join(d.reset(), err)
	case err != nil:
		return false, err
	}
	defer resp.body.Close()
	if resp.start == 0 && have > 0 {
		d.f.opts.Log.Info("artifact server ignored the range; starting over",
			zap.String("name", d.name), zap.Int64("had", have))
		if err := d.reset(); err != nil {
			return false, err
		}
		d.resumedAt = 0
	} else if resp.start != have {
		return false, errors.Join(d.reset(), fmt.Errorf("server answered range %d- from %d", have, resp.start))
	}
	if resp.total >= 0 && d.f.opts.MaxBytes > 0 && resp.total > d.f.opts.MaxBytes {
		return false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.total, d.f.opts.MaxBytes)
	}
	if d.meta.ETag != resp.v.ETag || d.meta.LastModified != resp.v.LastModified || d.meta.Total != resp.total {
		d.meta.ETag, d.meta.LastModified, d.meta.Total = resp.v.ETag, resp.v.LastModified, resp.total
		if b, err := json.Marshal(d.meta); err == nil {
			// Best effort: without it a later resume just lacks If-Range
			// and the digest still decides.
			_ = os.WriteFile(d.metaPath(), b, 0o600)
		}
	}
	if resp.total > d.w.off {
		if err := preallocate(d.file, d.w.off, resp.total-d.w.off); err != nil {
			return false, err
		}
	}
	err = d.copy(resp.body, resp.total, timer)
	// Progress is a longer partial file than before this attempt: a server
	// that cuts every whole response at the same point makes none.
	progressed = d.w.off > have
	if err != nil {
		return progressed, err
	}
	if resp.total >= 0 && d.w.off != resp.total {
		return progressed, fmt.Errorf("%w: got %d of %d bytes", io.ErrUnexpectedEOF, d.w.off, resp.total)
	}
	return progressed, d.verify()
}

// sync makes the hash state match the partial file on disk: after a
// failed write, or on the first attempt with bytes left by an earlier run.
func (d *download) sync() error {
	fi, err := d.file.Stat()
	if err != nil {
		return &localError{fmt.Errorf("partial file: %w", err)}
	}
	if d.w.off == fi.Size() {
		return nil
	}
	d.w.resetHash()
	if _, err := io.Copy(d.w.hashes(), io.NewSectionReader(d.file, 0, fi.Size())); err != nil {
		return &localError{fmt.Errorf("partial file: %w", err)}
	}
	d.w.off = fi.Size()
	return nil
}

// reset empties the partial file and its validators.
func (d *download) reset() error {
	if err := d.file.Truncate(0); err != nil {
		return &localError{fmt.Errorf("partial file: %w", err)}
	}
	d.w.resetHash()
	d.w.off = 0
	d.meta = meta{URL: d.meta.URL, Total: -1}
	_ = os.Remove(d.metaPath())
	return nil
}

// verify compares the digest of the complete partial file, and checks its
// signature. A failure after a resume starts over once from byte 0 (the
// origin may have replaced the file between the two parts); otherwise it
// is final. With no checksum given, the digest computed is the one the
// artifact is cached under.
func (d *download) verify() error {
	sum := hex.EncodeToString(d.w.h.Sum(nil))
	var err error
	switch {
	case d.want.sum != "" && sum != d.want.sum:
		err = fmt.Errorf("%w: %s is %s, want %s", ErrChecksum, d.want.algo, sum, d.want.sum)
	case d.sig != nil:
		d.w.hashes() // an empty artifact has written nothing yet
		d.signer, err = d.w.v.finish()
		// The verifier has had its stream; a retry needs a new one.
		d.w.v = nil
		if err != nil && !errors.Is(err, ErrSignature) {
			err = fmt.Errorf("%w: %w", ErrSignature, err)
		}
	}
	if err == nil {
		if d.want.sum == "" {
			d.want.sum = sum
		}
		return nil
	}
	if d.resumedAt > 0 && !d.restarted {
		d.restarted = true
		d.resumedAt = 0
		d.f.opts.Log.Warn("resumed artifact failed verification; downloading it whole",
			zap.String("name", d.name), zap.String("url", redact.URL(d.url.String())), zap.Error(err))
		return errors.Join(d.reset(), errRestart)
	}
	return err
}

// errRestart asks for another attempt from byte 0, at once.
var errRestart = errors.New("starting the download over")

// discard removes the partial file and its metadata.
func (d *download) discard() {
	d.file.Close()
	d.file = nil
	_ = os.Remove(d.partial)
	_ = os.Remove(d.metaPath())
}

func mibPerSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

// copy streams body into the partial file and the hash in one pass. A
// reader goroutine (TLS decryption, the socket) fills large buffers while
// this one hashes and writes the previous, so the network and the disk
// overlap on separate cores; large buffers make a stream of small TLS
// records cost few syscalls.
func (d *download) copy(body io.ReadCloser, total int64, idle *time.Timer) error {
	type chunk struct {
		buf []byte
		n   int
		err error
	}
	free := make(chan []byte, copyBuffers)
	for range copyBuffers {
		free <- make([]byte, copyBufSize)
	}
	filled := make(chan chunk, copyBuffers)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := fill(body, buf, idle, d.f.opts.Timeout)
			select {
			case filled <- chunk{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// On an early return, closing the body ends a blocked read, so the
	// reader has stopped touching the body and the timer when copy returns.
	defer func() {
		close(stop)
		body.Close()
		<-done
	}()
	rep := d.newReporter(total)
	for c := range filled {
		if c.n > 0 {
			if d.f.opts.MaxBytes > 0 && d.w.off+int64(c.n) > d.f.opts.MaxBytes {
				return fmt.Errorf("%w: limit %d bytes", ErrTooLarge, d.f.opts.MaxBytes)
			}
			if _, err := d.w.Write(c.buf[:c.n]); err != nil {
				return &localError{fmt.Errorf("partial file: %w", err)}
			}
			d.fresh += int64(c.n)
			rep.report(d.w.off, false)
		}
		if c.err == io.EOF {
			rep.report(d.w.off, true)
			return nil
		}
		if c.err != nil {
			return fmt.Errorf("after %d bytes: %w", d.w.off, c.err)
		}
		free <- c.buf
	}
	return nil
}

// fill reads into buf until it is full, the body ends, or an error; each
// read that brings bytes re-arms the idle timer.
func fill(r io.Reader, buf []byte, idle *time.Timer, timeout time.Duration) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		if m > 0 {
			idle.Reset(timeout)
		}
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// preallocate reserves the rest of the file's blocks without changing its
// size (which must stay the count of bytes had, for resuming): a full disk
// fails now rather than after the download, and the file gets few extents.
// Filesystems without fallocate just go on.
func preallocate(file *os.File, off, n int64) error {
	const keepSize = 0x01 // FALLOC_FL_KEEP_SIZE
	err := syscall.Fallocate(int(file.Fd()), keepSize, off, n)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &localError{fmt.Errorf("partial file: %d more bytes: %w", n, err)}
	}
	return nil
}

// reporter throttles progress to the callback or the log.
type reporter struct {
	d     *download
	total int64
	last  time.Time
	every time.Duration
}

func (d *download) newReporter(total int64) *reporter {
	every := progressEvery
	if d.f.opts.Progress == nil {
		every = logProgressEvery
	}
	return &reporter{d: d, total: total, last: time.Now(), every: every}
}

func (r *reporter) report(done int64, final bool) {
	now := time.Now()
	if !final && now.Sub(r.last) < r.every {
		return
	}
	r.last = now
	if p := r.d.f.opts.Progress; p != nil {
		p(r.d.name, done, r.total)
		return
	}
	if !final {
		r.d.f.opts.Log.Info("artifact download progress",
			zap.String("name", r.d.name), zap.Int64("bytes", done), zap.Int64("total", r.total),
			zap.Float64("mib_per_s", mibPerSec(r.d.fresh, now.Sub(r.d.start))))
	}
}

// localError is a failure on this host (disk full, permissions): another
// network attempt would not help.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }
