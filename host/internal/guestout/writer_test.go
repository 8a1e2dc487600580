package guestout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a destination that the test drives: each Write hands its bytes to the test on wrote
// and then waits for release. Receiving from wrote is the event "the drain is writing this and
// is stuck until released".
type gate struct {
	wrote   chan string
	release chan struct{}
}

func newGate() *gate { return &gate{wrote: make(chan string), release: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.wrote <- string(p)
	<-g.release
	return len(p), nil
}

// expect receives the drain's next write, fails the test unless it is want, and leaves the
// drain stuck in it.
func (g *gate) expect(t *testing.T, want string) {
	t.Helper()
	if got := <-g.wrote; got != want {
		t.Fatalf("the drain wrote %q, want %q", got, want)
	}
}

// pass lets the drain write want and go on.
func (g *gate) pass(t *testing.T, want string) {
	t.Helper()
	g.expect(t, want)
	g.release <- struct{}{}
}

// write calls w.Write and fails the test unless it took all of s.
func write(t testing.TB, w *Writer, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
	}
}

// closeOK closes w, which must write all it holds.
func closeOK(t *testing.T, w *Writer) {
	t.Helper()
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// usage returns how many bytes the buffer holds and how much storage it has, both of which the
// limit bounds.
func (w *Writer) usage() (held, storage int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held.len(), len(w.held.buf)
}

// report is the report of lines dropped with a buffer of limit bytes.
func report(lines int, limit int) string {
	return string(appendReport(nil, int64(lines), limit, false))
}

// syncBuffer is a destination that keeps up: a bytes.Buffer safe for the drain and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Output that fits is written completely and in order, lines and partial lines alike.
func TestOutputKeptUpIsCompleteAndInOrder(t *testing.T) {
	var dst syncBuffer
	w := New(&dst, 0)
	var want strings.Builder
	for i := range 20000 {
		s := fmt.Sprintf("line %d\n", i)
		if i%7 == 0 { // a line written in two pieces
			write(t, w, s[:3])
			write(t, w, s[3:])
		} else {
			write(t, w, s)
		}
		want.WriteString(s)
	}
	closeOK(t, w)
	if got := dst.String(); got != want.String() {
		t.Fatalf("got %d bytes, want %d; they differ", len(got), want.Len())
	}
}

// A line whose end does not fit is dropped whole, with the beginning still held, and the
// report stands in its place once what came before is written.
func TestLineThatDoesNotFitIsDroppedWhole(t *testing.T) {
	g := newGate()
	w := New(g, 16)
	write(t, w, "a\n")
	g.expect(t, "a\n") // the drain is stuck: the buffer is empty and has 16 bytes of room
	write(t, w, "hello ")
	write(t, w, "world, and more\n") // 6+16 > 16: "hello " is taken back
	write(t, w, "next\n")            // dropped: the gap is open
	if held, _ := w.usage(); held != 0 {
		t.Fatalf("the buffer holds %d bytes, want 0", held)
	}
	g.release <- struct{}{}
	g.pass(t, report(2, 16))
	write(t, w, "after\n")
	g.pass(t, "after\n")
	closeOK(t, w)
}

// A line whose beginning has already gone to the destination cannot be taken back: the report
// ends it, on a line of its own, so that the next line is not spliced onto it.
func TestLineCutShortIsEndedByTheReport(t *testing.T) {
	g := newGate()
	w := New(g, 16)
	write(t, w, "abc")
	g.expect(t, "abc")
	write(t, w, "defghijklmnopqrstuvwxyz\n")
	write(t, w, "x\n")
	g.release <- struct{}{}
	g.pass(t, "\n"+report(2, 16))
	write(t, w, "after\n")
	g.pass(t, "after\n")
	closeOK(t, w)
}

// Once a line is dropped, the rest of it is dropped in later writes up to its newline, even
// after the gap has been reported, and the line is counted once.
func TestRestOfDroppedLineIsSkipped(t *testing.T) {
	g := newGate()
	w := New(g, 16)
	write(t, w, "a\n")
	g.expect(t, "a\n")
	write(t, w, "0123456789abcdefXYZ") // 19 bytes, no newline
	write(t, w, "more")
	g.release <- struct{}{}
	g.pass(t, report(1, 16))
	write(t, w, "tail\nnext\n")
	g.pass(t, "next\n")
	closeOK(t, w)
}

// Of a write that does not fit, the whole lines that fit are kept and the rest dropped.
func TestWholeLinesThatFitAreKept(t *testing.T) {
	g := newGate()
	w := New(g, 16)
	write(t, w, "a\n")
	g.expect(t, "a\n")
	write(t, w, "b1\nb2\nb3\nb4\nb5\nb6\n") // 18 bytes
	g.release <- struct{}{}
	g.pass(t, "b1\nb2\nb3\nb4\nb5\n")
	g.pass(t, report(1, 16))
	closeOK(t, w)
}

// A line longer than the limit never fits, even with the reader keeping up.
func TestLineLongerThanLimitIsDropped(t *testing.T) {
	var dst syncBuffer
	w := New(&dst, 16)
	write(t, w, "short\n")
	write(t, w, strings.Repeat("x", 40)+"\n")
	closeOK(t, w)
	if got, want := dst.String(), "short\n"+report(1, 16); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// The stream a test reads: data lines "<writer> <seq> <padding>" and reports.
var (
	dataLine   = regexp.MustCompile(`^(\d+) (\d+) (x*)$`)
	reportLine = regexp.MustCompile(`^wasmloop: (\d+) lines? of guest output dropped \(more than \d+ bytes were waiting to be written\)$`)
)

// line is the n-th line of writer id: long enough that a few make a chunk.
func line(id, n int) string {
	return strconv.Itoa(id) + " " + strconv.Itoa(n) + " " + padding[:40+n%50] + "\n"
}

var padding = strings.Repeat("x", 100)

// checkStream checks that out is whole data lines and reports only; that each writer's lines
// come in the order written; that a report never follows a report; and that the lines present
// and the lines reported dropped add up to total. With one writer it checks more: each report
// counts exactly the lines missing at its place. It returns the lines present and the reports.
func checkStream(t *testing.T, out string, writers, total int) (present, reports int) {
	t.Helper()
	if out == "" {
		t.Fatalf("no output; %d lines were written", total)
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("the output ends with a partial line: %q", out[max(0, len(out)-80):])
	}
	next := map[int]int{}     // each writer's next line if none is missing
	reported, pending := 0, 0 // pending: the count of the report just read
	for i, s := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if m := reportLine.FindStringSubmatch(s); m != nil {
			if pending > 0 {
				t.Fatalf("line %d: a report after a report", i)
			}
			pending = atoi(m[1])
			reported += pending
			reports++
			continue
		}
		m := dataLine.FindStringSubmatch(s)
		if m == nil || s+"\n" != line(atoi(m[1]), atoi(m[2])) {
			t.Fatalf("line %d is neither a whole line nor a report: %q", i, s)
		}
		id, n := atoi(m[1]), atoi(m[2])
		if n < next[id] {
			t.Fatalf("line %d: writer %d's line %d after its line %d", i, id, n, next[id]-1)
		}
		if writers == 1 && n-next[id] != pending {
			t.Fatalf("line %d: line %d follows line %d and a report of %d dropped", i, n, next[id]-1, pending)
		}
		next[id] = n + 1
		present++
		pending = 0
	}
	if writers == 1 && total-next[0] != pending {
		t.Fatalf("the output ends after line %d and a report of %d dropped; %d were written", next[0]-1, pending, total)
	}
	if present+reported != total {
		t.Fatalf("%d lines present and %d reported dropped; %d were written", present, reported, total)
	}
	return present, reports
}

// atoi is strconv.Atoi for strings the regexps matched as digits.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// With the destination stuck, Write still returns at once, however much is written; the
// buffer stays within its limit; what is dropped is whole lines, counted; and once the reader
// is back, the report comes and later lines arrive intact.
func TestStuckDestinationDoesNotBlockWrite(t *testing.T) {
	const limit = 64 << 10
	pr, pw := io.Pipe() // nobody reads yet: the drain's first Write waits
	w := New(pw, limit)
	written, lines := 0, 0
	for written < 64<<20 {
		s := line(0, lines)
		write(t, w, s)
		written += len(s)
		lines++
		if held, storage := w.usage(); held > limit || storage > limit {
			t.Fatalf("after %d bytes, the buffer holds %d bytes in %d of storage; the limit is %d", written, held, storage, limit)
		}
	}

	// The reader comes back. It reads until the pipe closes, and says when it sees a report.
	reported := make(chan struct{})
	read := make(chan string, 1)
	go func() {
		var out strings.Builder
		buf := make([]byte, 32<<10)
		seen := false
		for {
			n, err := pr.Read(buf)
			out.Write(buf[:n])
			if !seen && strings.Contains(out.String(), "wasmloop: ") {
				seen = true
				close(reported)
			}
			if err != nil {
				read <- out.String()
				return
			}
		}
	}()
	<-reported
	// The gap has closed before its report was written, and the buffer was empty then: these
	// lines fit and must all arrive.
	const later = 100
	var tail strings.Builder
	for range later {
		s := line(0, lines)
		write(t, w, s)
		tail.WriteString(s)
		lines++
	}
	closeOK(t, w)
	pw.Close()
	out := <-read
	present, reports := checkStream(t, out, 1, lines)
	if reports == 0 || present == lines {
		t.Fatalf("%d of %d lines present, %d reports: nothing was dropped", present, lines, reports)
	}
	if !strings.HasSuffix(out, tail.String()) {
		t.Fatalf("the lines written after the report are not all there")
	}
}

// Several goroutines writing at once, as the workers do: every line arrives whole (a Write of
// two lines keeps them together), each goroutine's lines in order, and the dropped ones are
// all counted.
func TestConcurrentWritersKeepLinesWhole(t *testing.T) {
	const writers, perPhase = 8, 500
	pr, pw := io.Pipe()
	w := New(pw, 4<<10)
	next := make([]int, writers)
	phase := func() {
		var wg sync.WaitGroup
		for id := range writers {
			wg.Go(func() {
				for range perPhase {
					if next[id]%10 == 0 { // two lines in one Write
						write(t, w, line(id, next[id])+line(id, next[id]+1))
						next[id] += 2
					} else {
						write(t, w, line(id, next[id]))
						next[id]++
					}
				}
			})
		}
		wg.Wait()
	}
	phase() // nobody reads: far more than 4 KiB is written, and most of it dropped
	read := make(chan string, 1)
	go func() {
		out, _ := io.ReadAll(pr)
		read <- string(out)
	}()
	phase() // the reader reads meanwhile
	closeOK(t, w)
	pw.Close()
	total := 0
	for _, n := range next {
		total += n
	}
	out := <-read
	if _, reports := checkStream(t, out, writers, total); reports == 0 {
		t.Fatalf("no report, though more than the limit was written while nobody read")
	}
	// The first line of a pair is followed by the second, or by the report of its loss.
	lines := strings.Split(out, "\n")
	for i, s := range lines[:len(lines)-1] {
		m := dataLine.FindStringSubmatch(s)
		if m == nil || atoi(m[2])%10 != 0 {
			continue
		}
		if second := line(atoi(m[1]), atoi(m[2])+1); lines[i+1]+"\n" != second && !reportLine.MatchString(lines[i+1]) {
			t.Fatalf("line %d: %q is followed by %q, not by %q", i, s, lines[i+1], second)
		}
	}
}

// Close gives up when ctx ends, although the destination is stuck; what it held is lost and
// the drain, once unstuck, writes nothing more and stops.
func TestCloseReturnsWhenDestinationIsStuck(t *testing.T) {
	g := newGate()
	w := New(g, 16)
	write(t, w, "a\n")
	g.expect(t, "a\n")
	write(t, w, "b\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want %v", err, context.DeadlineExceeded)
	}
	if _, err := w.Write([]byte("c\n")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close = %v, want %v", err, os.ErrClosed)
	}
	g.release <- struct{}{}
	<-w.done
	select {
	case s := <-g.wrote:
		t.Fatalf("the drain wrote %q after Close gave up", s)
	default:
	}
}

// failing is a destination that fails.
type failing struct{ err error }

func (f failing) Write([]byte) (int, error) { return 0, f.err }

// The destination's first error ends the stream, and Close and later Writes report it.
func TestDestinationErrorIsReported(t *testing.T) {
	broken := errors.New("broken")
	w := New(failing{broken}, 0)
	write(t, w, "a\n") // the error comes later, from the drain
	if err := w.Close(context.Background()); !errors.Is(err, broken) {
		t.Fatalf("Close = %v, want %v", err, broken)
	}
	if _, err := w.Write([]byte("b\n")); !errors.Is(err, broken) {
		t.Fatalf("Write after the error = %v, want %v", err, broken)
	}
}

// Once the buffer has grown, a Write allocates nothing.
func TestWriteDoesNotAllocate(t *testing.T) {
	w := New(io.Discard, 0)
	defer w.Close(context.Background())
	p := []byte("GET /api/items/42 200 0.4ms\n")
	for range 10000 {
		w.Write(p)
	}
	if n := testing.AllocsPerRun(1000, func() { w.Write(p) }); n != 0 {
		t.Fatalf("a Write allocates %v times", n)
	}
}

// The drain's chunks are whole lines of at most chunk bytes when the lines are shorter.
func TestDrainWritesWholeLines(t *testing.T) {
	g := newGate()
	w := New(g, 1<<20)
	write(t, w, "first\n")
	g.expect(t, "first\n")
	var all strings.Builder
	for i := 0; all.Len() < 3*chunk; i++ {
		s := line(0, i)
		write(t, w, s)
		all.WriteString(s)
	}
	g.release <- struct{}{}
	var got strings.Builder
	for got.Len() < all.Len() {
		s := <-g.wrote
		if len(s) > chunk || !strings.HasSuffix(s, "\n") {
			t.Fatalf("the drain wrote %d bytes ending %q", len(s), s[max(0, len(s)-10):])
		}
		got.WriteString(s)
		g.release <- struct{}{}
	}
	if got.String() != all.String() {
		t.Fatalf("the chunks do not add up to what was written")
	}
	closeOK(t, w)
}

// BenchmarkWrite is one loop writing short lines that the destination keeps up with.
func BenchmarkWrite(b *testing.B) {
	w := New(io.Discard, 0)
	p := []byte("GET /api/items/42 200 0.4ms\n")
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(p)
	}
	b.StopTimer()
	w.Close(context.Background())
}

// BenchmarkWriteParallel is several loops writing to one Writer.
func BenchmarkWriteParallel(b *testing.B) {
	w := New(io.Discard, 0)
	p := []byte("GET /api/items/42 200 0.4ms\n")
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Write(p)
		}
	})
	b.StopTimer()
	w.Close(context.Background())
}

// BenchmarkWriteStuck is the cost of a Write that is dropped because nobody reads.
func BenchmarkWriteStuck(b *testing.B) {
	pr, pw := io.Pipe()
	w := New(pw, 0)
	p := []byte("GET /api/items/42 200 0.4ms\n")
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(p)
	}
	b.StopTimer()
	pr.CloseWithError(io.ErrClosedPipe) // unsticks the drain, which then stops
	w.Close(context.Background())
}
