package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

// Bounds of the event stream (GET /api/v1/events).
const (
	maxEventStreams    = 64               // open at once; more get 503
	eventHeartbeat     = 15 * time.Second // a comment line, so proxies and clients see the stream alive
	eventWriteTimeout  = 10 * time.Second // a client that takes no bytes this long is dropped
	recordsListTimeout = 10 * time.Second
)

// eventStreams bounds and ends the open event streams: shutdown cancels
// their context first, since http.Server.Shutdown does not end handlers
// that stream.
type eventStreams struct {
	slots     chan struct{} // one per open stream
	ctx       context.Context
	stop      context.CancelFunc
	heartbeat time.Duration
}

func newEventStreams(heartbeat time.Duration) *eventStreams {
	if heartbeat <= 0 {
		heartbeat = eventHeartbeat
	}
	ctx, stop := context.WithCancel(context.Background())
	return &eventStreams{slots: make(chan struct{}, maxEventStreams), ctx: ctx, stop: stop, heartbeat: heartbeat}
}

// serveEvents streams the events as Server-Sent Events: id is the
// event's sequence, event its type, data its JSON. A client resumes with
// Last-Event-ID (after that event) or ?from=<seq> (from that one); without
// either it gets the events from now on. ?type=a,b keeps only those types.
func (s *server) serveEvents(w http.ResponseWriter, r *http.Request) {
	types, err := eventTypesParam(r.URL.Query().Get("type"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	from, err := resumeFrom(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case s.streams.slots <- struct{}{}:
		defer func() { <-s.streams.slots }()
	default:
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("too many event streams open (%d)", maxEventStreams), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams.ctx, cancel)()
	events, err := s.state.SubscribeEvents(ctx, from)
	if err != nil {
		s.log.Warn().Err(err).Msg("event stream: cannot subscribe")
		http.Error(w, "events are unavailable: "+err.Error(), storeStatus(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not hold the stream back
	w.WriteHeader(http.StatusOK)
	sse := &sseWriter{w: w, rc: http.NewResponseController(w)}
	// The connection may serve another request after this one.
	defer sse.rc.SetWriteDeadline(time.Time{})
	if sse.flush() != nil {
		return
	}
	tick := time.NewTicker(s.streams.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if sse.comment("heartbeat") != nil {
				return
			}
		case e, ok := <-events:
			if !ok {
				return // the store closed
			}
			if types != nil && !types[e.Type] {
				continue
			}
			if sse.event(e) != nil {
				return
			}
		}
	}
}

// sseWriter writes Server-Sent Events, each flushed at once and bounded
// in time.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sseWriter) event(e store.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.write(fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data))
}

func (s *sseWriter) comment(text string) error { return s.write(": " + text + "\n\n") }

func (s *sseWriter) write(text string) error {
	if err := s.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := s.w.Write([]byte(text)); err != nil {
		return err
	}
	return s.flush()
}

func (s *sseWriter) flush() error { return s.rc.Flush() }

// eventTypesParam parses ?type=a,b; nil means every type.
func eventTypesParam(v string) (map[store.EventType]bool, error) {
	if v == "" {
		return nil, nil
	}
	out := map[store.EventType]bool{}
	for _, name := range strings.Split(v, ",") {
		t := store.EventType(strings.TrimSpace(name))
		if !t.Valid() {
			names := make([]string, len(store.EventTypes))
			for i, t := range store.EventTypes {
				names[i] = string(t)
			}
			return nil, fmt.Errorf("type: unknown event type %q; want some of %s", name, strings.Join(names, ","))
		}
		out[t] = true
	}
	return out, nil
}

// resumeFrom is the sequence the stream starts at: after Last-Event-ID,
// which a reconnecting client sends and which wins over the URL it keeps,
// else ?from, else 0 (from now on).
func resumeFrom(r *http.Request) (uint64, error) {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil || id == ^uint64(0) {
			return 0, fmt.Errorf("Last-Event-ID: %q is not an event id (a sequence number)", v)
		}
		return id + 1, nil
	}
	if v := r.URL.Query().Get("from"); v != "" {
		seq, err := strconv.ParseUint(v, 10, 64)
		if err != nil || seq == 0 {
			return 0, fmt.Errorf("from: %q is not an event sequence number (1 or more)", v)
		}
		return seq, nil
	}
	return 0, nil
}

// serveCDR lists call records: ?since=<RFC 3339> (default: the oldest
// kept) and ?limit=N (default and maximum: store.RecordLimit's).
func (s *server) serveCDR(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, fmt.Sprintf("since: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", v), http.StatusBadRequest)
			return
		}
		since = t
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			http.Error(w, fmt.Sprintf("limit: %q is not a whole number from 1 to %d", v, store.MaxRecordLimit), http.StatusBadRequest)
			return
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordsListTimeout)
	defer cancel()
	recs, err := s.state.ListRecords(ctx, since, store.RecordLimit(limit))
	if err != nil {
		s.log.Warn().Err(err).Msg("call records: cannot list")
		http.Error(w, "call records are unavailable: "+err.Error(), storeStatus(err))
		return
	}
	if recs == nil {
		recs = []store.CallRecord{}
	}
	writeJSON(w, recs)
}

// storeStatus is the HTTP status of a store error: 503 for an outage
// (retry later), 500 otherwise.
func storeStatus(err error) int {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
