//go:build wasip1

package wasmloop

import "github.com/wasmloop/wasmloop/abi"

var onMessage func(from int, data []byte)

// MaxMessage is the largest message PostMessage and Broadcast take.
const MaxMessage = abi.MaxMessage

// PostMessage sends data to worker (0 … WorkerCount()-1), Node's worker.send. It returns at
// once; the receiver's OnMessage function runs later, on its own worker, and messages from one
// sender arrive in the order they were sent. It fails with ELIMIT when the receiver has too
// many messages waiting, ECLOSED when that worker has ended, EINVAL for a bad worker or a
// message over MaxMessage.
func PostMessage(worker int, data []byte) error {
	p, n := bytesPtr(data)
	return errnoOrNil(hostPost(int32(worker), p, n))
}

// Broadcast sends data to every other worker. An error names the first receiver that could
// not take it; the others still got the message.
func Broadcast(data []byte) error {
	p, n := bytesPtr(data)
	return errnoOrNil(hostPost(abi.PostAll, p, n))
}

// OnMessage sets the function that receives messages from other workers. data is valid only
// during the call: copy what you keep.
func OnMessage(fn func(from int, data []byte)) { onMessage = fn }
