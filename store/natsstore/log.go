package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	msg, err := s.eventMsg(&e)
	if err != nil {
		return store.Event{}, fmt.Errorf("%s: %w", what, err)
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return store.Event{}, err
	}
	defer cancel()
	ack, err := s.js.PublishMsg(c, msg)
	if err != nil {
		return store.Event{}, s.fail(ctx, what, err)
	}
	e.Seq = ack.Sequence
	return e, nil
}

// eventMsg stamps e (At, Node) and encodes it as its stream message.
func (s *Store) eventMsg(e *store.Event) (*nats.Msg, error) {
	if !e.Type.Valid() {
		return nil, fmt.Errorf("%w: unknown type", store.ErrInvalid)
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Node, e.Seq = s.opts.NodeID, 0
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: EventSubjectPrefix + string(e.Type), Data: data}, nil
}

// recordMsg stamps r (Ended, Node) and encodes it as its stream message.
func (s *Store) recordMsg(r *store.CallRecord) (*nats.Msg, error) {
	if r.Ended.IsZero() {
		r.Ended = time.Now()
	}
	r.Node = s.opts.NodeID
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: RecordSubject, Data: data}, nil
}

// AppendLog implements store.Log: every entry is published before any
// acknowledgement is awaited, so a batch costs the store one round trip
// rather than one per entry. Events keep their order: one connection
// carries them to the stream in the order sent.
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
	type sent struct {
		id   uint64
		done <-chan error
	}
	out := make([]sent, len(entries))
	for i := range entries {
		e := &entries[i]
		var msg *nats.Msg
		if e.Record != nil {
			msg, err = s.recordMsg(e.Record)
		} else {
			msg, err = s.eventMsg(&e.Event)
		}
		if err == nil {
			out[i].id, out[i].done, err = s.acks.publish(s.nc, msg)
		}
		if err != nil {
			errs[i] = s.fail(ctx, what(*e), err)
		}
	}
	for i, o := range out {
		if o.done == nil {
			continue
		}
		if err := s.acks.wait(c, o.id, o.done); err != nil {
			errs[i] = s.fail(ctx, what(entries[i]), err)
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
		from = info.State.LastSeq + 1
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventSubjectPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
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
			e, ok := s.decodeEvent(msg)
			if !ok {
				continue
			}
			select {
			case ch <- e:
			case <-sub.Done():
				return
			}
		}
	}()
	return ch, nil
}

func (s *Store) decodeEvent(msg jetstream.Msg) (store.Event, bool) {
	var e store.Event
	md, err := msg.Metadata()
	if err == nil {
		err = json.Unmarshal(msg.Data(), &e)
	}
	if err != nil {
		s.log.Error().Err(err).Str("subject", msg.Subject()).Int("bytes", len(msg.Data())).Msg("corrupt event skipped")
		return store.Event{}, false
	}
	e.Seq = md.Sequence.Stream
	return e, true
}

// AppendRecord implements store.Records.
func (s *Store) AppendRecord(ctx context.Context, r store.CallRecord) error {
	what := "append call record " + r.CallID
	msg, err := s.recordMsg(&r)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return err
	}
	defer cancel()
	if _, err := s.js.PublishMsg(c, msg); err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// ListRecords implements store.Records: an ordered consumer from since,
// reading as many as are stored, up to limit.
func (s *Store) ListRecords(ctx context.Context, since time.Time, limit int) ([]store.CallRecord, error) {
	what := "list call records"
	limit = store.RecordLimit(limit)
	c, cancel, err := s.begin(ctx, what)
	if err != nil {
		return nil, err
	}
	defer cancel()
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
	want := int(min(info.NumPending, uint64(limit)))
	var out []store.CallRecord
	for len(out) < want {
		var batch jetstream.MessageBatch
		if err := settle(c, func() (err error) { batch, err = cons.Fetch(want-len(out), jetstream.FetchContext(c)); return err }); err != nil {
			return nil, s.fail(ctx, what, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			var r store.CallRecord
			if err := json.Unmarshal(msg.Data(), &r); err != nil {
				s.log.Error().Err(err).Int("bytes", len(msg.Data())).Msg("corrupt call record skipped")
				want-- // it counted as pending
				continue
			}
			out = append(out, r)
		}
		if err := batch.Error(); err != nil {
			return nil, s.fail(ctx, what, err)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
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
