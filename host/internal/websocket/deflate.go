package websocket

import (
	"bytes"
	"compress/flate"
	"io"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// resettableInflater adapts compress/flate's decompressor to wsflate's
// ReadResetter, so wsflate.Reader reuses it instead of allocating a new
// 40 KiB decompressor for every message.
type resettableInflater struct{ io.ReadCloser }

func (d *resettableInflater) Reset(src io.Reader) {
	_ = d.ReadCloser.(flate.Resetter).Reset(src, nil)
}

// Inflater holds a decompressor (about 40 KiB). Each message is inflated on its own, at its
// end, inside Reader.Next, so one Inflater can serve every Reader that runs on the same
// goroutine: an event loop keeps one instead of one per connection. wsflate.Reader appends the
// 0x00 0x00 0xff 0xff tail that RFC 7692 §7.2.2 has senders strip (plus an
// empty final block, so the stream ends), and each message starts afresh:
// the handshake negotiates client_no_context_takeover.
type Inflater struct {
	src bytes.Reader
	fr  *wsflate.Reader
}

// NewInflater returns an Inflater ready to be shared by Readers (Reader.Inflater).
func NewInflater() *Inflater {
	z := &Inflater{}
	z.fr = wsflate.NewReader(&z.src, func(src io.Reader) wsflate.Decompressor {
		return &resettableInflater{flate.NewReader(src)}
	})
	return z
}

// inflate decompresses r.zbuf into r.msg, failing with 1009 as soon as the
// output passes MaxMessage (a small compressed message may expand a
// thousandfold) and with 1007 on corrupt data.
func (r *Reader) inflate() *Error {
	if r.Inflater == nil {
		r.Inflater = NewInflater()
	}
	z := r.Inflater
	z.src.Reset(r.zbuf)
	z.fr.Reset(&z.src)
	limit := r.maxMessage()
	r.msg = r.msg[:0]
	for {
		if len(r.msg) == cap(r.msg) {
			r.msg = append(r.msg, 0)[:len(r.msg)]
		}
		room := r.msg[len(r.msg):cap(r.msg)]
		if over := limit + 1 - int64(len(r.msg)); int64(len(room)) > over {
			room = room[:over]
		}
		n, err := z.fr.Read(room)
		r.msg = r.msg[:len(r.msg)+n]
		if int64(len(r.msg)) > limit {
			return errTooBigInflate
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errInflate
		}
	}
}

// Writer compresses outgoing messages for a connection that negotiated
// permessage-deflate. Each message is compressed on its own (the handshake
// negotiates server_no_context_takeover), so a Writer holds no history
// between messages. The zero value is ready to use; it is not safe for
// concurrent use.
type Writer struct {
	buf bytes.Buffer
	fw  *wsflate.Writer
}

// AppendMessage appends msg as one final data frame (op is ws.OpText or
// ws.OpBinary); it does not fragment, so dst grows by the whole message. The payload is compressed, RSV1 set and the trailing
// 0x00 0x00 0xff 0xff removed (RFC 7692 §7.2.1); when compressing would not
// make it smaller the frame is sent uncompressed with RSV1 clear, which RFC
// 7692 §6.1 allows message by message. The error is only ever a
// compressor failure, which compress/flate does not produce for an
// in-memory destination.
func (w *Writer) AppendMessage(dst []byte, op ws.OpCode, msg []byte) ([]byte, error) {
	if w.fw == nil {
		w.fw = wsflate.NewWriter(&w.buf, func(dst io.Writer) wsflate.Compressor {
			// BestSpeed suits an event loop better than the default level. An
			// invalid level is flate.NewWriter's only error, so there is none.
			fw, _ := flate.NewWriter(dst, flate.BestSpeed)
			return fw
		})
	}
	w.buf.Reset()
	w.fw.Reset(&w.buf)
	if _, err := w.fw.Write(msg); err != nil {
		return dst, err
	}
	if err := w.fw.Flush(); err != nil {
		return dst, err
	}
	z := w.buf.Bytes()
	if len(z) >= len(msg) {
		return AppendFrame(dst, op, msg, true), nil
	}
	return appendFrame(dst, true, 4, op, z), nil
}
