package loop

import (
	"testing"

	"github.com/wasmloop/wasmloop/abi"
)

func TestPostErrors(t *testing.T) {
	g := NewGroup(nil, Config{Workers: 2})
	for _, l := range g.loops {
		if err := l.init(); err != nil {
			t.Fatal(err)
		}
	}
	l0, l1 := g.loops[0], g.loops[1]
	t.Cleanup(func() { l0.poll.Close() })
	l0.cur = &instance{}
	l0.cur.calls = hostCalls{l: l0, in: l0.cur}
	if rc := l0.cur.calls.Post(1, []byte("hi")); rc != 0 || l1.in.queued.Load() != 1 || len(l1.tasks) != 1 {
		t.Fatalf("Post = %d, queued %d, tasks %d", rc, l1.in.queued.Load(), len(l1.tasks))
	}
	for _, tc := range []struct {
		target int32
		data   []byte
		want   abi.Errno
	}{
		{2, nil, abi.EINVAL}, {-3, nil, abi.EINVAL}, {abi.PostHost, nil, abi.ENOTSUP}, {1, make([]byte, abi.MaxMessage+1), abi.EINVAL},
	} {
		if got := abi.Errno(l0.cur.calls.Post(tc.target, tc.data)); got != tc.want {
			t.Errorf("Post(%d, %d bytes) = %v, want %v", tc.target, len(tc.data), got, tc.want)
		}
	}
	if l1.retire() {
		t.Fatal("a loop with a message waiting must not retire")
	}
	l1.tasks = nil
	if !l1.retire() {
		t.Fatal("an idle loop must retire")
	}
	l1.poll.Close()
	if got := abi.Errno(l0.cur.calls.Post(1, []byte("late"))); got != abi.ECLOSED {
		t.Fatalf("Post to an ended worker = %v, want ECLOSED", got)
	}
	if got := abi.Errno(l0.cur.calls.Post(abi.PostAll, []byte("all"))); got != abi.ECLOSED {
		t.Fatalf("broadcast with an ended worker = %v, want ECLOSED", got)
	}
}
