package sip

import (
	"slices"
	"testing"
	"time"

	"github.com/parkswitch/parkswitch/store"
)

func TestOrbitView(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	rec := func(policy string, code int, call string) store.Orbit {
		return store.Orbit{Policy: policy, Code: code, CallID: call, ParkedAt: at, ParkedParty: store.Party{User: "1001"}}
	}
	k10, k11 := lampKey{"demopark", 10}, lampKey{"demopark", 11}
	type step struct {
		name    string
		do      func(v *orbitView) []lampKey
		changed []lampKey // nil: not checked
		busy    map[lampKey]bool
	}
	apply := func(c store.OrbitChange) func(v *orbitView) []lampKey {
		return func(v *orbitView) []lampKey { return v.apply(c) }
	}
	ended := func(k lampKey, call string) func(v *orbitView) []lampKey {
		return func(v *orbitView) []lampKey { v.noteEnded(k, orbitID{call, at.UnixNano()}); return nil }
	}
	steps := []step{
		{"reset with one orbit; the policy's case does not matter", apply(store.OrbitChange{Reset: true, Orbits: []store.Orbit{rec("DemoPark", 10, "a")}}),
			[]lampKey{k10}, map[lampKey]bool{k10: true, k11: false}},
		{"a park elsewhere", apply(store.OrbitChange{Policy: "demopark", Code: 11, Orbit: rec("DemoPark", 11, "b")}),
			[]lampKey{k11}, map[lampKey]bool{k10: true, k11: true}},
		{"ended here, the store not told yet", ended(k10, "a"), nil, map[lampKey]bool{k10: false, k11: true}},
		{"an end here of another park at the code hides nothing", ended(k11, "zzz"), nil, map[lampKey]bool{k11: true}},
		{"ended here before the watch brought the park", ended(lampKey{"demopark", 12}, "e"), nil, nil},
		{"the park arrives late: hidden", apply(store.OrbitChange{Policy: "demopark", Code: 12, Orbit: rec("DemoPark", 12, "e")}),
			[]lampKey{{"demopark", 12}}, map[lampKey]bool{{"demopark", 12}: false}},
		{"and freed", apply(store.OrbitChange{Policy: "demopark", Code: 12, Gone: true}), []lampKey{{"demopark", 12}}, map[lampKey]bool{{"demopark", 12}: false}},
		{"the same record written again stays hidden", apply(store.OrbitChange{Policy: "demopark", Code: 10, Orbit: rec("DemoPark", 10, "a")}),
			[]lampKey{k10}, map[lampKey]bool{k10: false}},
		{"another park at the code shows", apply(store.OrbitChange{Policy: "demopark", Code: 10, Orbit: rec("DemoPark", 10, "c")}),
			[]lampKey{k10}, map[lampKey]bool{k10: true}},
		{"freed", apply(store.OrbitChange{Policy: "demopark", Code: 10, Gone: true}), []lampKey{k10}, map[lampKey]bool{k10: false, k11: true}},
		{"a reset drops what it lacks and adds what is new", apply(store.OrbitChange{Reset: true, Orbits: []store.Orbit{rec("DemoPark", 10, "d")}}),
			[]lampKey{k10, k11}, map[lampKey]bool{k10: true, k11: false}},
		{"a reset with the same orbits changes nothing", apply(store.OrbitChange{Reset: true, Orbits: []store.Orbit{rec("demopark", 10, "d")}}),
			[]lampKey{}, map[lampKey]bool{k10: true}},
	}
	var v orbitView
	for _, st := range steps {
		got := st.do(&v)
		if st.changed != nil {
			slices.SortFunc(got, func(a, b lampKey) int { return a.code - b.code })
			if !slices.Equal(got, st.changed) && !(len(got) == 0 && len(st.changed) == 0) {
				t.Errorf("%s: changed %v, want %v", st.name, got, st.changed)
			}
		}
		for k, want := range st.busy {
			s, ok := v.state(k)
			if ok != want || s.busy != want {
				t.Errorf("%s: %v busy %v, want %v", st.name, k, s.busy, want)
			}
			if ok && (s.since != at.UnixNano() || s.parked.User != "1001") {
				t.Errorf("%s: %v shows %+v", st.name, k, s)
			}
		}
	}
}
