package natsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// acks pipelines stream publishes: each message carries a reply subject
// of one wildcard subscription made when the store connects, and the
// stream's acknowledgement comes back there, so that a batch is sent at
// once and its acknowledgements awaited together. It is the client
// library's asynchronous publish without its goroutines made on first use,
// which would outlive nothing here but would belong to no one.
type acks struct {
	prefix string
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan error
}

func newAcks(nc *nats.Conn) (*acks, error) {
	a := &acks{prefix: nc.NewInbox() + ".", pending: map[uint64]chan error{}}
	sub, err := nc.Subscribe(a.prefix+"*", a.reply)
	if err != nil {
		return nil, fmt.Errorf("natsstore: acknowledgement subscription: %w", err)
	}
	a.sub = sub
	return a, nil
}

// publish sends msg with a reply subject of its own and returns the
// channel its outcome arrives on (buffered: an unawaited one is dropped).
func (a *acks) publish(nc *nats.Conn, msg *nats.Msg) (uint64, <-chan error, error) {
	done := make(chan error, 1)
	a.mu.Lock()
	a.next++
	id := a.next
	a.pending[id] = done
	a.mu.Unlock()
	msg.Reply = a.prefix + strconv.FormatUint(id, 10)
	if err := nc.PublishMsg(msg); err != nil {
		a.forget(id)
		return 0, nil, err
	}
	return id, done, nil
}

// forget drops a publish whose outcome is no longer awaited.
func (a *acks) forget(id uint64) {
	a.mu.Lock()
	delete(a.pending, id)
	a.mu.Unlock()
}

// reply decodes an acknowledgement: a PubAck, an API error, or the status
// of no responders (no stream, or no server for it).
func (a *acks) reply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[min(len(a.prefix), len(m.Subject)):], 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	done, ok := a.pending[id]
	delete(a.pending, id)
	a.mu.Unlock()
	if !ok {
		return
	}
	done <- ackError(m)
}

// A stream's PubAck starts with its stream's name; an API error has an
// error member.
var pubAckPrefix, apiErrorKey = []byte(`{"stream":`), []byte(`"error"`)

func ackError(m *nats.Msg) error {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return nats.ErrNoResponders
	}
	if bytes.HasPrefix(m.Data, pubAckPrefix) && !bytes.Contains(m.Data, apiErrorKey) {
		return nil // the common case, without a decode
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return fmt.Errorf("acknowledgement not understood: %w", err)
	}
	if ack.Error != nil {
		return ack.Error
	}
	return nil
}

// wait waits for a publish's outcome until ctx ends.
func (a *acks) wait(ctx context.Context, id uint64, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		a.forget(id)
		return ctx.Err()
	}
}
