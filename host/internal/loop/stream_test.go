package loop

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wasmloop/wasmloop/abi"
)

// socketConn is a connection of a bare loop backed by one end of a socketpair; the test holds
// the other end.
func socketConn(t *testing.T, l *Loop, ln *listener) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	t.Cleanup(func() { unix.Close(fds[1]) })
	l.addConn(fds[0], ln)
	return l.conns[fds[0]], fds[1]
}

// A write that leaves more than the high-water mark unsent answers AboveMark, and on_drain is
// queued once the peer has read enough.
func TestWriteAboveMarkThenDrain(t *testing.T) {
	l := bareLoop(t)
	l.cfg.WriteHighWater = 64 << 10
	c, peer := socketConn(t, l, &listener{fd: -1})
	n, err := httpOf(c).parser.Parse([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &l.httpScratch.req)
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
	ex := httpOf(c).newExchange(&l.httpScratch.req)
	if rc := l.cur.calls.Respond(ex.handle, 200, nil, nil, 0); rc != 0 {
		t.Fatalf("Respond = %d", rc)
	}
	chunk := make([]byte, 32<<10)
	rc := int32(0)
	for i := 0; i < 64 && rc == 0; i++ { // the socket buffer fills, then the mark is passed
		rc = l.cur.calls.Write(ex.handle, chunk)
	}
	if rc != abi.AboveMark || !ex.needDrain {
		t.Fatalf("Write = %d after filling the socket, needDrain %v", rc, ex.needDrain)
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < 100 && c.outLen() > 0; i++ {
		unix.Read(peer, buf)
		l.flush(c)
	}
	if len(l.queue.drainNotices) != 1 || l.queue.drainNotices[0] != ex.handle || ex.needDrain {
		t.Fatalf("drains %v, needDrain %v, unsent %d", l.queue.drainNotices, ex.needDrain, c.outLen())
	}
}

// A client's EOF between the output's draining and on_drain's delivery finds a response in
// flight, not an idle request: the guest is about to send the rest (a client that only
// half-closed wants it), so the connection stays open until the response ends.
func TestEOFWhileDrainQueuedKeepsTheResponse(t *testing.T) {
	l := bareLoop(t)
	l.cfg.WriteHighWater = 64 << 10
	c, peer := socketConn(t, l, &listener{fd: -1})
	if _, err := httpOf(c).parser.Parse([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &l.httpScratch.req); err != nil {
		t.Fatal(err)
	}
	ex := httpOf(c).newExchange(&l.httpScratch.req)
	if rc := l.cur.calls.Respond(ex.handle, 200, nil, nil, 0); rc != 0 {
		t.Fatalf("Respond = %d", rc)
	}
	chunk := make([]byte, 32<<10)
	for rc, i := int32(0), 0; i < 64 && rc == 0; i++ {
		rc = l.cur.calls.Write(ex.handle, chunk)
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < 100 && c.outLen() > 0; i++ {
		unix.Read(peer, buf)
		l.flush(c)
	}
	if len(l.queue.drainNotices) != 1 || !l.queue.drainQueued(ex.handle) {
		t.Fatalf("drains %v, queued for this exchange %v: want on_drain queued", l.queue.drainNotices, l.queue.drainQueued(ex.handle))
	}
	unix.Shutdown(peer, unix.SHUT_WR)
	httpOf(c).peerEOF()
	if c.closed() || !httpOf(c).last {
		t.Fatalf("after the EOF: closed %v, last %v; want the response to go on, then the close", c.closed(), httpOf(c).last)
	}
}

func TestPauseErrors(t *testing.T) {
	l := bareLoop(t)
	c, _ := socketConn(t, l, &listener{fd: -1})
	httpOf(c).parser.Parse([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), &l.httpScratch.req)
	ex := httpOf(c).newExchange(&l.httpScratch.req)
	if got := abi.Errno(l.cur.calls.Pause(ex.handle, 1)); got != abi.ESTATE {
		t.Fatalf("Pause on a buffered request = %v, want ESTATE", got)
	}
	ex.streaming = true
	if rc := l.cur.calls.Pause(ex.handle, 1); rc != 0 || !ex.paused || ex.receiving() {
		t.Fatalf("Pause = %d, paused %v", rc, ex.paused)
	}
	ex.expect100 = true
	if rc := l.cur.calls.Pause(ex.handle, 0); rc != 0 || ex.paused || string(c.out) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("resume: rc %d, paused %v, out %q", rc, ex.paused, c.out)
	}
	if rc := l.cur.calls.Pause(ex.handle, 0); rc != 0 || len(c.out) != len("HTTP/1.1 100 Continue\r\n\r\n") {
		t.Fatalf("a second resume must not send another 100 Continue: %q", c.out)
	}
	if got := abi.Errno(l.cur.calls.Pause(abi.MakeHandle(abi.KindRequest, 99, 0), 1)); got != abi.EBADHANDLE {
		t.Fatalf("stale handle: %v", got)
	}
	ex.bodyDone = true
	if got := abi.Errno(l.cur.calls.Pause(ex.handle, 1)); got != abi.ESTATE {
		t.Fatalf("Pause after the body ended = %v, want ESTATE", got)
	}
}

// A streamed body fed in odd-sized pieces reaches the guest through on_body and comes back
// whole; the next pipelined request is answered after it.
func TestStreamedBodyThroughGuest(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/streamecho"))
	ln := listenerOf(t, l)
	if !ln.stream {
		t.Fatal("the guest's listener does not stream bodies")
	}
	body := strings.Repeat("0123456789abcdef", 20000) // 320,000 bytes: more than the inbox
	var chunked strings.Builder
	for i := 0; i < len(body); i += 7001 {
		part := body[i:min(i+7001, len(body))]
		fmt.Fprintf(&chunked, "%x;ext=1\r\n%s\r\n", len(part), part)
	}
	chunked.WriteString("0\r\nX-Trailer: ok\r\n\r\n")
	reqs := "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String() +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
	c, peer := socketConn(t, l, ln)
	unix.SetNonblock(peer, true)
	var wire []byte
	buf := make([]byte, 1<<20)
	// Pump as the loop would: bytes arrive in pieces; output is flushed and read by the peer,
	// which lets a paused body resume (on_drain) and the next request be served.
	for i, rounds := 0, 0; rounds < 10000; rounds++ {
		if i < len(reqs) && l.reading(c) {
			piece := []byte(reqs[i:min(i+1500, len(reqs))])
			i += len(piece)
			if len(c.in) > 0 {
				c.in = append(c.in, piece...)
				l.consume(c, c.in, false)
			} else {
				l.consume(c, piece, true)
			}
			l.afterCallback()
		}
		l.settle()
		n, _ := unix.Read(peer, buf)
		if n > 0 {
			wire = append(wire, buf[:n]...)
		}
		l.flush(c)
		l.settle()
		if i >= len(reqs) && n <= 0 && c.outLen() == 0 && httpOf(c).ex == nil && len(c.in) == 0 {
			break
		}
	}
	if c.closed() {
		t.Fatal("the connection closed")
	}
	br := bufio.NewReader(strings.NewReader(string(wire)))
	for _, want := range []string{body, "hello"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%v in %.200q", err, wire)
		}
		got, _ := io.ReadAll(resp.Body)
		if string(got) != want {
			t.Fatalf("echoed %d bytes, want %d", len(got), len(want))
		}
	}
}

// Review B1: a request on connection A that ends B's held response must not make the loop
// read B into the shared buffer while A's bytes are still being served from it.
func TestResumeNeverNestsInsideServe(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold"))
	ln := listenerOf(t, l)
	a, peerA := socketConn(t, l, ln)
	b, peerB := socketConn(t, l, ln)
	get := func(p string) string { return "GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n" }
	l.consume(b, []byte(get("/hold")), true)
	// B's next request waits in the kernel: it is read only once /hold is answered.
	unix.Write(peerB, []byte(get("/sB")))
	b.unread = true
	// A's two requests arrive in one read, from the shared buffer.
	n := copy(l.readBuf, get("/release")+get("/a2"))
	l.consume(a, l.readBuf[:n], true)
	l.afterCallback()
	l.settle()
	read := func(fd int) string {
		unix.SetNonblock(fd, true)
		buf := make([]byte, 1<<16)
		k, _ := unix.Read(fd, buf)
		return string(buf[:max(k, 0)])
	}
	gotA, gotB := read(peerA), read(peerB)
	if !strings.Contains(gotA, "path=/release") || !strings.Contains(gotA, "path=/a2") || strings.Contains(gotA, "/sB") {
		t.Fatalf("connection A got %q", gotA)
	}
	if !strings.Contains(gotB, "released") || !strings.Contains(gotB, "path=/sB") {
		t.Fatalf("connection B got %q", gotB)
	}
}

// Review B2: a timer never fires in the pass that started it, and far deadlines saturate.
func TestTimerDeadlines(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold")) // exports on_timer through the SDK
	h := abi.Handle(l.cur.calls.TimerStart(0, 0))
	tm, ok := l.timers.get(h)
	if !ok || tm.when <= l.clock() {
		t.Fatalf("a delay-0 timer is due in the current pass (when %d, now %d)", tm.when, l.clock())
	}
	far := abi.Handle(l.cur.calls.TimerStart(math.MaxInt64, math.MaxInt64))
	if tf, _ := l.timers.get(far); tf.when != math.MaxInt64 {
		t.Fatalf("a far deadline overflowed: %d", tf.when)
	}
	if addSat(math.MaxInt64-5, math.MaxInt64) != math.MaxInt64 || addSat(5, -3) != 2 {
		t.Fatal("addSat")
	}
}

// Review B3/B4: a connection that is closing, or whose client leaves its responses unread,
// is not read (its input would pile up without bound); it is read again once the output is
// back under half the mark.
func TestNoReadingWhileClosingOrBehind(t *testing.T) {
	l := bareLoop(t)
	c, _ := socketConn(t, l, &listener{fd: -1})
	if !l.reading(c) {
		t.Fatal("an idle connection must be read")
	}
	c.phase = connClosing
	if l.reading(c) {
		t.Fatal("a closing connection must not be read")
	}
	c.phase = connOpen
	c.out = make([]byte, l.cfg.WriteHighWater+1)
	if l.reading(c) || c.proto.serve([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")) != 0 {
		t.Fatal("a connection behind on its output must be neither read nor served")
	}
	l.checkStall(c)
	c.outOff = len(c.out) - l.cfg.WriteHighWater/2
	l.checkStall(c)
	if c.stalled || !l.reading(c) || len(l.queue.resumes) != 1 {
		t.Fatalf("back under half the mark: stalled %v, reading %v, resume %d", c.stalled, l.reading(c), len(l.queue.resumes))
	}
}

// Review B6: a connection told to finish (noMore) whose response is still being written
// closes once the output is gone, so a graceful shutdown does not wait for it.
func TestNoMoreClosesAfterOutput(t *testing.T) {
	l := bareLoop(t)
	c, peer := socketConn(t, l, &listener{fd: -1})
	c.out = append(l.outBuf(c), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"...)
	httpOf(c).last = true
	l.flush(c)
	if c.phase == connOpen || !(c.closed() || (c.phase == connLingering)) {
		t.Fatalf("closeAfter %v closed %v lingering %v", (c.phase != connOpen), c.closed(), (c.phase == connLingering))
	}
	unix.Shutdown(peer, unix.SHUT_WR) // EOF ends the linger
	l.readConn(c)
	if !c.closed() {
		t.Fatal("the lingering connection did not close at EOF")
	}
}

// writeThrough sends pending output and large body pieces in order, keeping exactly what the
// socket did not take, whether it took all, part or none of it; with the pieces gathered
// (a mark of 256 KiB) or each written at once (64 KiB), chunked or with a Content-Length.
func TestWriteThroughKeepsOrder(t *testing.T) {
	for _, mark := range []int{64 << 10, 256 << 10} {
		for _, length := range []bool{false, true} {
			t.Run(fmt.Sprintf("mark=%dk,length=%v", mark>>10, length), func(t *testing.T) {
				writeInOrder(t, mark, length)
			})
		}
	}
}

func writeInOrder(t *testing.T, mark int, length bool) {
	l := bareLoop(t)
	l.cfg.WriteHighWater = mark
	c, peer := socketConn(t, l, &listener{fd: -1})
	httpOf(c).parser.Parse([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &l.httpScratch.req)
	ex := httpOf(c).newExchange(&l.httpScratch.req)
	var pieces [][]byte
	var want strings.Builder
	want.WriteString("first;")
	for i := 0; i < 40; i++ { // ~2.6 MB: more than the socketpair holds, so some writes are partial
		piece := []byte(strings.Repeat(string(rune('a'+i%26)), 64<<10+i))
		pieces = append(pieces, piece)
		want.Write(piece)
	}
	var hdr []byte
	if length {
		hdr = []byte(fmt.Sprintf("Content-Length: %d\r\n", want.Len()))
	}
	if rc := l.cur.calls.Respond(ex.handle, 200, hdr, []byte("first;"), 0); rc != 0 { // head pending
		t.Fatalf("Respond = %d", rc)
	}
	for i, piece := range pieces {
		if rc := l.cur.calls.Write(ex.handle, piece); rc < 0 {
			t.Fatalf("Write %d = %d", i, rc)
		}
	}
	l.cur.calls.End(ex.handle)
	var wire []byte
	buf := make([]byte, 1<<20)
	unix.SetNonblock(peer, true)
	for i := 0; i < 1000 && (c.outLen() > 0 || len(wire) == 0); i++ {
		n, _ := unix.Read(peer, buf)
		wire = append(wire, buf[:max(n, 0)]...)
		l.flush(c)
	}
	for n, _ := unix.Read(peer, buf); n > 0; n, _ = unix.Read(peer, buf) {
		wire = append(wire, buf[:n]...)
	}
	body, err := readResponse(string(wire), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if err != nil {
		t.Fatalf("%v (%d bytes)", err, len(wire))
	}
	if body != want.String() {
		t.Fatalf("body of %d bytes differs from the %d written", len(body), want.Len())
	}
}

// Large body pieces are gathered up to the mark (at most 256 KiB) and go out in one write
// with the piece that reaches it; with a mark of one piece, each goes out at once.
func TestBodyPiecesGathered(t *testing.T) {
	for _, mark := range []int{64 << 10, 256 << 10} {
		l := bareLoop(t)
		l.cfg.WriteHighWater = mark
		c, peer := socketConn(t, l, &listener{fd: -1})
		unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20) // room for every write
		httpOf(c).parser.Parse([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &l.httpScratch.req)
		ex := httpOf(c).newExchange(&l.httpScratch.req)
		if rc := l.cur.calls.Respond(ex.handle, 200, []byte("Content-Length: 1048576\r\n"), nil, 0); rc != 0 {
			t.Fatalf("Respond = %d", rc)
		}
		piece, peek := make([]byte, 64<<10), make([]byte, 1<<20)
		for i := 1; i <= 4; i++ {
			if rc := l.cur.calls.Write(ex.handle, piece); rc != 0 {
				t.Fatalf("mark %d: Write %d = %d", mark, i, rc)
			}
			sent, _, _ := unix.Recvfrom(peer, peek, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			sent = max(sent, 0)
			switch gathered := mark > 64<<10 && i < 4; {
			case gathered && (sent != 0 || c.outLen() < i*len(piece)):
				t.Fatalf("mark %d, piece %d: %d bytes sent, %d pending; want the pieces gathered", mark, i, sent, c.outLen())
			case !gathered && (sent < i*len(piece) || c.outLen() != 0):
				t.Fatalf("mark %d, piece %d: %d bytes sent, %d pending; want all sent", mark, i, sent, c.outLen())
			}
		}
	}
}

// A streamed body of known length is read straight into the guest's inbox, never through
// the loop's read buffer, and no read takes bytes past it: the request pipelined after it is
// parsed and answered.
func TestStreamedBodyReadIntoInbox(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/streamecho"))
	c, peer := socketConn(t, l, listenerOf(t, l))
	unix.SetNonblock(peer, true)
	body := strings.Repeat("0123456789abcdef", 20000) // 320,000 bytes: five inboxes
	var wire []byte
	buf := make([]byte, 1<<20)
	pump := func() {
		l.readConn(c)
		l.settle()
		for n, _ := unix.Read(peer, buf); n > 0; n, _ = unix.Read(peer, buf) {
			wire = append(wire, buf[:n]...)
		}
		l.flush(c)
		l.settle()
	}
	send := func(b string) {
		for i := 0; i < 1000 && len(b) > 0; i++ {
			n, _ := unix.Write(peer, []byte(b[:min(len(b), 50000)]))
			b = b[max(n, 0):]
			pump()
		}
		if len(b) > 0 {
			t.Fatalf("%d bytes could not be sent", len(b))
		}
	}
	send(fmt.Sprintf("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", len(body)))
	for i := range l.readBuf {
		l.readBuf[i] = '#'
	}
	send(body)
	if strings.Trim(string(l.readBuf), "#") != "" {
		t.Fatal("body bytes went through the loop's read buffer")
	}
	send("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
	for i := 0; i < 100 && strings.Count(string(wire), "HTTP/1.1 200") < 2; i++ {
		pump()
	}
	if c.closed() {
		t.Fatal("the connection closed")
	}
	br := bufio.NewReader(strings.NewReader(string(wire)))
	for _, want := range []string{body, "hello"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%v in %.200q", err, wire)
		}
		got, _ := io.ReadAll(resp.Body)
		if string(got) != want {
			t.Fatalf("echoed %d bytes, want %d", len(got), len(want))
		}
	}
}

// Review 2, bug 1: 1,000 pipelined requests in one read are all answered, although their
// responses pass the high-water mark without any write having to wait.
func TestManyPipelinedRequestsAllAnswered(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/hold"))
	c, peer := socketConn(t, l, listenerOf(t, l))
	unix.SetNonblock(peer, true)
	const n = 1000
	reqs := strings.Repeat("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", n)
	copy(l.readBuf, reqs)
	l.consume(c, l.readBuf[:len(reqs)], true)
	var wire []byte
	buf := make([]byte, 1<<20)
	for i := 0; i < 1000; i++ {
		l.settle()
		k, _ := unix.Read(peer, buf)
		wire = append(wire, buf[:max(k, 0)]...)
		if strings.Count(string(wire), "HTTP/1.1 200 OK") == n {
			return
		}
		l.flush(c)
		l.readPending()
	}
	t.Fatalf("%d of %d responses; %d bytes unparsed, stalled %v", strings.Count(string(wire), "HTTP/1.1 200 OK"), n, len(c.in), c.stalled)
}

// Review 2, bug 2: a client that aborts a streamed upload is reported to the guest (on_close)
// at once, not whenever some other callback happens to run.
func TestAbortedStreamReported(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/streamecho"))
	c, peer := socketConn(t, l, listenerOf(t, l))
	unix.Write(peer, []byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly ten b"))
	l.readConn(c)
	l.settle()
	if httpOf(c).ex == nil || l.exchanges.len() != 1 {
		t.Fatalf("the streamed request is not open (exchanges %d)", l.exchanges.len())
	}
	unix.Shutdown(peer, unix.SHUT_WR)
	l.readConn(c)
	l.settle()
	if !c.closed() || l.exchanges.len() != 0 || len(l.queue.closeNotices) != 0 {
		t.Fatalf("closed %v, exchanges %d, notices waiting %d", c.closed(), l.exchanges.len(), len(l.queue.closeNotices))
	}
}

// A chunked body whose chunks arrive together reaches the guest in one on_body call, not one
// per chunk: streamecho writes each call back as one response chunk, so the response's chunks
// count the calls.
func TestChunksGatheredPerRead(t *testing.T) {
	l := guestLoop(t, buildGuest(t, "testdata/streamecho"))
	c, peer := socketConn(t, l, listenerOf(t, l))
	unix.SetNonblock(peer, true)
	var req strings.Builder
	req.WriteString("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := 0; i < 500; i++ {
		req.WriteString("1\r\nx\r\n")
	}
	req.WriteString("0\r\n\r\n")
	l.consume(c, []byte(req.String()), true)
	l.afterCallback()
	l.settle()
	l.flush(c)
	buf := make([]byte, 1<<20)
	n, _ := unix.Read(peer, buf)
	wire := string(buf[:max(n, 0)])
	head, rest, ok := strings.Cut(wire, "\r\n\r\n")
	if !ok || !strings.Contains(head, "Transfer-Encoding: chunked") {
		t.Fatalf("not a chunked response: %q", wire)
	}
	var body strings.Builder
	chunks := 0
	for {
		line, after, ok := strings.Cut(rest, "\r\n")
		size, err := strconv.ParseInt(line, 16, 64)
		if !ok || err != nil || int64(len(after)) < size+2 {
			t.Fatalf("bad chunk framing at %q", rest)
		}
		if size == 0 {
			break
		}
		chunks++
		body.WriteString(after[:size])
		rest = after[size+2:]
	}
	if body.String() != strings.Repeat("x", 500) {
		t.Fatalf("echoed %q", body.String())
	}
	if chunks > 2 {
		t.Errorf("500 one-byte chunks arriving together took %d guest calls, want them gathered into one", chunks)
	}
}

// A raw TCP read is pending from the program's call until its answer is handed to the
// program: a second read made after the first was answered, but before that answer reached
// the program (from another callback delivered first), is EBUSY, and one made after is not.
func TestTCPReadPendingUntilHandedOver(t *testing.T) {
	l := bareLoop(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	t.Cleanup(func() { unix.Close(fds[1]) })
	s, err := (&Op{l: l, in: l.cur}).AdoptTCP(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	first, second := &Op{l: l, in: l.cur}, &Op{l: l, in: l.cur}
	s.Read(first, 100)
	if n := s.t.serve([]byte("hello")); n != 5 || len(l.queue.results) != 1 || l.queue.results[0].op != first {
		t.Fatalf("serve took %d bytes, %d results queued: want the first read answered", n, len(l.queue.results))
	}
	s.Read(second, 100)
	if r := l.queue.results; len(r) != 2 || r[1].op != second || !r[1].failed || !strings.HasPrefix(string(r[1].res), abi.ReachEBUSY+" ") {
		t.Fatalf("a read before the first's answer was handed over: %d results, last %q; want EBUSY", len(r), r[len(r)-1].res)
	}
	first.handOver() // as deliverResults does before the program's callback
	third := &Op{l: l, in: l.cur}
	s.Read(third, 100)
	if len(l.queue.results) != 2 || s.t.read != third {
		t.Fatalf("a read after the answer was handed over: %d results queued, waiting %v; want it to wait for bytes", len(l.queue.results), s.t.read == third)
	}
}
