package sip

import (
	"net/netip"
	"testing"

	"github.com/parkswitch/parkswitch/media"
)

func testPrompts(t *testing.T) *Prompts {
	t.Helper()
	ps := &Prompts{}
	mk := func(n int) *media.Prompt {
		p, err := media.NewPrompt(media.EncodeWAV(make([]int16, 160*n)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ps.ParkedAt = mk(10)
	for i := range ps.Digits {
		ps.Digits[i] = mk(i + 1) // told apart by length
	}
	return ps
}

func TestPromptsSay(t *testing.T) {
	ps := testPrompts(t)
	for _, tt := range []struct {
		code int
		want []int // digits after "parked at"
	}{
		{10, []int{1, 0}},
		{7, []int{7}},
		{5099, []int{5, 0, 9, 9}},
	} {
		got := ps.say(tt.code)
		if len(got) != 1+len(tt.want) || got[0] != ps.ParkedAt {
			t.Fatalf("say(%d) = %d prompts, want parked at and %v", tt.code, len(got), tt.want)
		}
		for i, d := range tt.want {
			if got[1+i] != ps.Digits[d] {
				t.Errorf("say(%d): prompt %d is not %d", tt.code, i+1, d)
			}
		}
	}
	if err := ps.check(); err != nil {
		t.Errorf("a full set: %v", err)
	}
	ps.Digits[4] = nil
	if err := ps.check(); err == nil {
		t.Error("a set without 4 passed the check")
	}
}

func TestPromptFormat(t *testing.T) {
	pcmu, pcma := media.PCMU, media.PCMA
	dyn := media.Format{PayloadType: 96, Name: "pcma", ClockRate: 8000}
	opus := media.Format{PayloadType: 111, Name: "opus", ClockRate: 48000, Channels: 2}
	w := media.NewSDPWriter(netip.MustParseAddr("127.0.0.1"))
	for _, tt := range []struct {
		name   string
		phone  []media.Format // the phone's SDP
		ours   []media.Format // the switch's last SDP to it; nil: none
		want   media.Format
		wantOK bool
	}{
		{"answered PCMU", []media.Format{pcmu}, []media.Format{pcmu, pcma}, pcmu, true},
		{"offered both, PCMA answered", []media.Format{pcmu, pcma}, []media.Format{pcma}, pcma, true},
		{"phone's order wins", []media.Format{opus, pcma, pcmu}, []media.Format{pcmu, pcma}, pcma, true},
		{"dynamic payload type kept", []media.Format{opus, dyn}, []media.Format{pcma}, dyn, true},
		{"no common G.711", []media.Format{pcmu}, []media.Format{pcma}, media.Format{}, false},
		{"no G.711 at all", []media.Format{opus}, []media.Format{opus}, media.Format{}, false},
		{"no SDP of ours: music's rule", []media.Format{opus, pcma, pcmu}, nil, pcma, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &leg{desc: media.Description{Formats: tt.phone}}
			if tt.ours != nil {
				l.lastSDP = w.Offer(4000, tt.ours, media.SendRecv)
			}
			got, ok := promptFormat(l)
			if ok != tt.wantOK || got.Name != tt.want.Name || got.PayloadType != tt.want.PayloadType {
				t.Errorf("promptFormat = %+v %v, want %+v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
