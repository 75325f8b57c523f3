package notify

import (
	"sync"

	"github.com/parkswitch/parkswitch/store"
)

// queue is one webhook's bounded queue of events. When it is full the
// oldest event is dropped for the new one: a channel wants to hear what is
// parked now more than what was parked while the receiver was away.
type queue struct {
	mu     sync.Mutex
	buf    []store.Event // ring of cap len(buf)
	head   int           // index of the oldest
	n      int
	closed bool
	wake   chan struct{} // a token when something was queued or the queue closed
}

func newQueue(size int) *queue {
	return &queue{buf: make([]store.Event, size), wake: make(chan struct{}, 1)}
}

// push queues e without waiting and reports how many events it dropped:
// the oldest when full, or e itself when the queue is closed.
func (q *queue) push(e store.Event) (dropped int) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 1
	}
	if q.n == len(q.buf) {
		q.buf[q.head] = store.Event{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		dropped = 1
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	q.mu.Unlock()
	q.signal()
	return dropped
}

// pop takes the oldest event; ok is false when the queue is empty, and
// closed then says whether more can still come.
func (q *queue) pop() (e store.Event, ok, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return store.Event{}, false, q.closed
	}
	e = q.buf[q.head]
	q.buf[q.head] = store.Event{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return e, true, q.closed
}

// close stops queuing; what is queued stays for pop.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// len is how many events wait.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
