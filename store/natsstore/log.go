package natsstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parkswitch/parkswitch/store"
)

// beat writes this node's heartbeat, which expires NodeTTL after it unless
// the next one replaces it.
func (s *Store) beat(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	data, err := json.Marshal(store.Node{ID: s.opts.NodeID, Addr: *s.addr.Load(), Started: s.started, Seen: time.Now()})
	if err != nil {
		return err
	}
	_, err = s.nodes.update(c, nodeKey(s.opts.NodeID), data, 0, s.opts.NodeTTL)
	return err
}

// heartbeat keeps this node listed until Close.
func (s *Store) heartbeat() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if !s.nc.IsConnected() {
			continue // the disconnect handler has said so
		}
		err := s.beat(s.ctx)
		switch {
		case err != nil && !failing && s.ctx.Err() == nil:
			s.log.Warn().Err(err).Msg("heartbeat not recorded; other nodes may take this one for gone")
			failing = true
		case err == nil && failing:
			s.log.Info().Msg("heartbeat recorded again")
			failing = false
		}
	}
}

// NodeID implements store.Nodes.
func (s *Store) NodeID() string { return s.opts.NodeID }

// SetNodeAddr implements store.Nodes: the heartbeat is written now with the
// new address.
func (s *Store) SetNodeAddr(ctx context.Context, addr string) error {
	s.addr.Store(&addr)
	what := "set node address"
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return err
	}
	defer cancel()
	if err := s.beat(c); err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// ListNodes implements store.Nodes: the nodes whose heartbeat key has not
// expired on the server, so no two nodes' clocks are compared.
func (s *Store) ListNodes(ctx context.Context) ([]store.Node, error) {
	what := "list nodes"
	if err := s.ready(ctx, what); err != nil {
		return nil, err
	}
	es, err := s.nodes.list(ctx, "n.>")
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	out := make([]store.Node, 0, len(es))
	for _, e := range es {
		var n store.Node
		if s.nodes.decode(e, &n) == nil {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b store.Node) int { return compareStrings(a.ID, b.ID) })
	return out, nil
}

// PublishEvent implements store.Events.
func (s *Store) PublishEvent(ctx context.Context, e store.Event) (store.Event, error) {
	what := "publish event " + string(e.Type)
	data, err := s.eventJSON(nil, &e)
	if err != nil {
		return store.Event{}, fmt.Errorf("%s: %w", what, err)
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return store.Event{}, err
	}
	defer cancel()
	ack, err := s.js.PublishMsg(c, &nats.Msg{Subject: EventSubject, Data: data})
	if err != nil {
		return store.Event{}, s.fail(ctx, what, err)
	}
	e.Seq = eventPosition(ack.Sequence, 0)
	return e, nil
}

// eventJSON stamps e (At, Node) and appends its encoding to b.
func (s *Store) eventJSON(b []byte, e *store.Event) ([]byte, error) {
	if !e.Type.Valid() {
		return nil, fmt.Errorf("%w: unknown type", store.ErrInvalid)
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Node, e.Seq = s.opts.NodeID, 0
	return e.AppendJSON(b)
}

// recordJSON stamps r (Ended, Node) and appends its encoding to b.
func (s *Store) recordJSON(b []byte, r *store.CallRecord) ([]byte, error) {
	if r.Ended.IsZero() {
		r.Ended = time.Now()
	}
	r.Node = s.opts.NodeID
	return r.AppendJSON(b)
}

// A log message is one or more entries, one JSON object a line (the
// encoders escape every line break within a value): a batch costs its
// stream one message, one write and one acknowledgement, rather than one
// of each an entry, which was most of what a call cost the store. An
// event's position in the log is its message's stream sequence shifted
// left by eventIndexBits, plus its line.
const (
	eventIndexBits = 8
	logLines       = 1 << eventIndexBits // entries a message at most
	logBytes       = 256 << 10           // and bytes, well within a server's max_payload
)

func eventPosition(streamSeq uint64, line int) uint64 {
	return streamSeq<<eventIndexBits | uint64(line)
}

// eventStart splits a position into the message to start from and the
// lines of it to skip.
func eventStart(pos uint64) (streamSeq uint64, skip int) {
	if pos>>eventIndexBits == 0 {
		return 1, 0
	}
	return pos >> eventIndexBits, int(pos & (logLines - 1))
}

// eachLine calls fn with each line of a log message and its number.
func eachLine(data []byte, fn func(n int, line []byte)) {
	for n := 0; len(data) > 0; n++ {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		fn(n, line)
		data = rest
	}
}

// logMsg is the message of a batch being filled: its stream's subject,
// its lines and the entries they are.
type logMsg struct {
	subject string
	data    *[]byte
	entries []int
}

// logBufs holds the buffers log messages are built in; a publish copies
// the message out.
var logBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// AppendLog implements store.Log: the events of a batch go in as few
// messages as its size allows, in their order, and its call records
// likewise; every message is published before any acknowledgement is
// awaited, so a batch costs the store one round trip. An entry's error is
// its message's.
func (s *Store) AppendLog(ctx context.Context, entries []store.LogEntry) []error {
	errs := make([]error, len(entries))
	what := func(e store.LogEntry) string {
		if e.Record != nil {
			return "append call record " + e.Record.CallID
		}
		return "publish event " + string(e.Event.Type)
	}
	c, cancel, err := s.begin(ctx, "write the event log")
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer cancel()
	fail := func(of []int, err error) {
		for _, i := range of {
			errs[i] = s.fail(ctx, what(entries[i]), err)
		}
	}
	type sent struct {
		entries []int
		id      uint64
		done    <-chan error
	}
	var out []sent
	publish := func(m *logMsg) {
		if len(m.entries) == 0 {
			return
		}
		id, done, err := s.acks.publish(s.nc, &nats.Msg{Subject: m.subject, Data: *m.data})
		if err != nil {
			fail(m.entries, err)
		} else {
			out = append(out, sent{m.entries, id, done})
		}
		*m.data, m.entries = (*m.data)[:0], nil
	}
	events := logMsg{subject: EventSubject, data: logBufs.Get().(*[]byte)}
	records := logMsg{subject: RecordSubject, data: logBufs.Get().(*[]byte)}
	defer logBufs.Put(events.data)
	defer logBufs.Put(records.data)
	for i := range entries {
		e, m := &entries[i], &events
		if e.Record != nil {
			m = &records
		}
		if len(m.entries) == logLines || len(*m.data) >= logBytes {
			publish(m)
		}
		b := *m.data
		if len(m.entries) > 0 {
			b = append(b, '\n')
		}
		if e.Record != nil {
			b, err = s.recordJSON(b, e.Record)
		} else {
			b, err = s.eventJSON(b, &e.Event)
		}
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", what(*e), err)
			continue
		}
		*m.data, m.entries = b, append(m.entries, i)
	}
	publish(&events)
	publish(&records)
	for _, o := range out {
		if err := s.acks.wait(c, o.id, o.done); err != nil {
			fail(o.entries, err)
		}
	}
	return errs
}

// SubscribeEvents implements store.Events with an ordered consumer, which
// the client library recreates from the last sequence delivered when the
// connection or the consumer is lost.
func (s *Store) SubscribeEvents(ctx context.Context, from uint64) (<-chan store.Event, error) {
	what := "subscribe to events"
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if from == 0 {
		// "From now on" is pinned to a sequence: an ordered consumer that
		// resets before delivering anything would otherwise start anew
		// from its reset, losing what was published in between.
		info, err := s.events.Info(c)
		if err != nil {
			return nil, s.fail(ctx, what, err)
		}
		from = eventPosition(info.State.LastSeq+1, 0)
	}
	startSeq, skip := eventStart(from)
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventSubjectPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: startSeq,
	}
	cons, err := s.events.OrderedConsumer(c, cfg)
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	// Short pulls and heartbeats: a pull request sent before the new
	// consumer's interest crossed the cluster's routes is lost silently,
	// and only missed heartbeats make the ordered consumer start over
	// (by default after 30 s).
	it, err := cons.Messages(jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	// The subscription lives until the caller's ctx or Close ends it.
	sub, stop := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.ctx, stop)
	ch := make(chan store.Event, 64)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ch)
		defer unhook()
		defer stop()
		defer it.Stop()
		for {
			msg, err := it.Next(jetstream.NextContext(sub))
			if err != nil {
				if sub.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				// Heartbeats missed while the server is away: the ordered
				// consumer resets itself once it is back.
				s.log.Debug().Err(err).Msg("event subscription waiting")
				continue
			}
			md, err := msg.Metadata()
			if err != nil {
				s.log.Error().Err(err).Str("subject", msg.Subject()).Msg("event message without metadata skipped")
				continue
			}
			first := 0
			if md.Sequence.Stream == startSeq {
				first = skip // a resume within a message
			}
			for _, e := range s.decodeEvents(msg.Data(), md.Sequence.Stream, first) {
				select {
				case ch <- e:
				case <-sub.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

// decodeEvents decodes a log message's events from line first on; a
// corrupt line is logged and skipped, and keeps its position.
func (s *Store) decodeEvents(data []byte, streamSeq uint64, first int) []store.Event {
	var out []store.Event
	eachLine(data, func(n int, line []byte) {
		if n < first {
			return
		}
		var e store.Event
		if err := json.Unmarshal(line, &e); err != nil {
			s.log.Error().Err(err).Uint64("stream_seq", streamSeq).Int("line", n).Int("bytes", len(line)).Msg("corrupt event skipped")
			return
		}
		e.Seq = eventPosition(streamSeq, n)
		out = append(out, e)
	})
	return out
}

// AppendRecord implements store.Records.
func (s *Store) AppendRecord(ctx context.Context, r store.CallRecord) error {
	what := "append call record " + r.CallID
	data, err := s.recordJSON(nil, &r)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := s.js.PublishMsg(c, &nats.Msg{Subject: RecordSubject, Data: data}); err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// ListRecords implements store.Records: an ordered consumer from since,
// reading as many as are stored, up to limit. A message's records were
// appended together, at its time.
//
// The consumer has one replica, placed on any server of the stream's,
// and one that has not yet applied the newest acknowledged appends would
// count too few pending: so the stream's last sequence is asked of its
// leader, and reading goes on until the consumer has delivered it.
func (s *Store) ListRecords(ctx context.Context, since time.Time, limit int) ([]store.CallRecord, error) {
	what := "list call records"
	limit = store.RecordLimit(limit)
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return nil, err
	}
	defer cancel()
	var si *jetstream.StreamInfo
	if err := settle(c, func() (err error) { si, err = s.records.Info(c); return err }); err != nil {
		return nil, s.fail(ctx, what, err)
	}
	if si.State.Msgs == 0 {
		return nil, nil
	}
	last := si.State.LastSeq
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.records.OrderedConsumer(c, cfg)
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	var info *jetstream.ConsumerInfo
	if err := settle(c, func() (err error) { info, err = cons.Info(c); return err }); err != nil {
		return nil, s.fail(ctx, what, err)
	}
	var out []store.CallRecord
	seen := info.Delivered.Stream // where the consumer starts, less one
	for attempt := 0; len(out) < limit && seen < last; {
		var batch jetstream.MessageBatch
		if err := settle(c, func() (err error) { batch, err = cons.FetchNoWait(limit - len(out)); return err }); err != nil {
			return nil, s.fail(ctx, what, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				return nil, s.fail(ctx, what, err)
			}
			seen = md.Sequence.Stream
			// A lagging replica starts its consumer at the end of what it
			// has; what reaches it later may predate since.
			if md.Timestamp.Before(since) {
				continue
			}
			eachLine(msg.Data(), func(_ int, line []byte) {
				var r store.CallRecord
				if err := json.Unmarshal(line, &r); err != nil {
					s.log.Error().Err(err).Int("bytes", len(line)).Msg("corrupt call record skipped")
					return
				}
				out = append(out, r)
			})
		}
		// A fetch's request, too, can find the consumer not yet reachable.
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrNoResponders) {
			return nil, s.fail(ctx, what, err)
		}
		if got > 0 {
			attempt = 0
			continue
		}
		// The consumer is not reachable yet, or its server has not yet
		// applied the rest.
		if err := backoff(c, attempt); err != nil {
			return nil, s.fail(ctx, what, err)
		}
		attempt++
	}
	return out[:min(len(out), limit)], nil
}

// settle runs fn again while it finds no responders: on a cluster, a
// consumer just created on one server is reachable from the others only
// once its interest has crossed the routes, a few milliseconds later.
func settle(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if !errors.Is(err, nats.ErrNoResponders) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}
