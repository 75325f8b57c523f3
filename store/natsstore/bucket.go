package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parkswitch/parkswitch/store"
)

// bucket wraps a key-value bucket with the store's error mapping, and
// with writes that carry a per-message TTL (the KV API sets one only on
// create).
type bucket struct {
	s       *Store
	name    string
	kv      jetstream.KeyValue
	stream  jetstream.Stream // the bucket's stream, for reads from its leader
	subject string           // "$KV.<bucket>.": subject prefix of its keys
}

// entry is a raw record and its revision.
type entry struct {
	key   string
	value []byte
	rev   uint64
}

// get returns the live value of key: store.ErrNotFound when it is absent,
// deleted or expired.
func (b *bucket) get(ctx context.Context, key string) (entry, error) {
	e, err := b.kv.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return entry{}, store.ErrNotFound
		}
		return entry{}, err
	}
	return entry{key: key, value: e.Value(), rev: e.Revision()}, nil
}

// create writes key if it holds no live value; store.ErrExists otherwise.
func (b *bucket) create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(ttl))
	}
	rev, err := b.kv.Create(ctx, key, value, opts...)
	if casLost(err) {
		return 0, store.ErrExists
	}
	return rev, err
}

// update writes key over revision rev (any revision when rev is 0), with
// a TTL when ttl is positive; store.ErrConflict when rev is not current.
func (b *bucket) update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	var opts []jetstream.PublishOpt
	if rev != 0 {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(rev))
	}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	ack, err := b.s.js.PublishMsg(ctx, &nats.Msg{Subject: b.subject + key, Data: value}, opts...)
	if casLost(err) {
		return 0, store.ErrConflict
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// remove purges key at revision rev (any when 0), leaving a marker that
// expires; store.ErrConflict when rev is not current.
func (b *bucket) remove(ctx context.Context, key string, rev uint64) error {
	opts := []jetstream.KVDeleteOpt{jetstream.PurgeTTL(markerTTL)}
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := b.kv.Purge(ctx, key, opts...)
	if casLost(err) {
		return store.ErrConflict
	}
	return err
}

// list returns the live entries whose keys match filter (a subject
// pattern such as "o.>"). A watch is one request, but its consumer may be
// placed on any replica, and a lagging follower would leave out what
// another node has just written (or give an old revision of it); so a
// replicated bucket is read from its stream leader instead. Every request
// is bounded by the op timeout, the list as a whole by ctx alone.
func (b *bucket) list(ctx context.Context, filter string) ([]entry, error) {
	if b.s.replicas > 1 {
		return b.listLeader(ctx, filter)
	}
	ctx, cancel := context.WithTimeout(ctx, b.s.opts.OpTimeout)
	defer cancel()
	w, err := b.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var out []entry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watch of %s closed", b.name)
			}
			if e == nil { // every value that was there has been delivered
				return out, nil
			}
			out = append(out, entry{key: e.Key(), value: e.Value(), rev: e.Revision()})
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// leaderGets bounds the gets of one listLeader in flight at once.
const leaderGets = 32

// listLeader asks the stream leader which keys match filter, then gets
// each key's latest message from it, leaderGets at a time, and stops at
// the first failure. Keys deleted since (a marker, or no message left)
// are left out.
func (b *bucket) listLeader(ctx context.Context, filter string) ([]entry, error) {
	c, cancel := context.WithTimeout(ctx, b.s.opts.OpTimeout)
	info, err := b.stream.Info(c, jetstream.WithSubjectFilter(b.subject+filter))
	cancel()
	if err != nil {
		return nil, err
	}
	subjects := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		subjects = append(subjects, subj)
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	got := make([]*entry, len(subjects))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(leaderGets, len(subjects)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				e, err := b.leaderGet(ctx, subjects[i])
				if err != nil {
					stop(err)
					continue
				}
				got[i] = e
			}
		}()
	}
	for i := range subjects {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(subjects))
	for _, e := range got {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, nil
}

// leaderGet returns subject's latest message as an entry from the stream
// leader; nil when the key is deleted or gone.
func (b *bucket) leaderGet(ctx context.Context, subject string) (*entry, error) {
	ctx, cancel := context.WithTimeout(ctx, b.s.opts.OpTimeout)
	defer cancel()
	m, err := b.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return nil, nil
	}
	return &entry{key: strings.TrimPrefix(subject, b.subject), value: m.Data, rev: m.Sequence}, nil
}

// casLost reports whether err is a lost create-if-absent or
// compare-and-set: the server's "wrong last sequence", which replicated
// streams report with another code (10164) than single ones (10071).
func casLost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// decode unmarshals a record, logging one that does not decode.
func (b *bucket) decode(e entry, v any) error {
	if err := json.Unmarshal(e.value, v); err != nil {
		b.s.log.Error().Err(err).Str("bucket", b.name).Str("key", e.key).Uint64("revision", e.rev).
			Int("bytes", len(e.value)).Msg("corrupt record skipped")
		return fmt.Errorf("%s %s: %w: %w", b.name, e.key, store.ErrCorrupt, err)
	}
	return nil
}

// esc turns s into key tokens: letters, digits, '-' and '_' stay, every
// other byte becomes =XX, so that any Call-ID, user or policy name is a
// valid key and no two names share one.
func esc(s string) string {
	var sb strings.Builder
	for i := range len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "=%02X", c)
		}
	}
	return sb.String()
}

func userKey(user string) string       { return "u." + esc(user) }
func policyToken(policy string) string { return esc(store.FoldPolicy(policy)) }
func orbitKey(policy string, code int) string {
	return "o." + policyToken(policy) + "." + strconv.Itoa(code)
}
func cursorKey(policy string) string      { return "c." + policyToken(policy) }
func dialogKey(callID, tag string) string { return "d." + esc(callID) + "." + esc(tag) }
func nodeKey(id string) string            { return "n." + esc(id) }
