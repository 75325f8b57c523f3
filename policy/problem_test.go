package policy

import "testing"

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Line: 7, Msg: "bad"}, "a.yaml:7: bad"},
		{Problem{File: "a.yaml", Msg: "bad"}, "a.yaml: bad"},
		{Problem{Line: 7, Msg: "bad"}, "line 7: bad"},
		{Problem{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestProblems(t *testing.T) {
	var none Problems
	if none.Err() != nil {
		t.Error("empty Problems.Err() is not nil")
	}
	ps := Problems{
		{File: "main.yaml", Line: 9, Msg: "c"},
		{File: "pol.yaml", Line: 2, Msg: "d"},
		{File: "main.yaml", Line: 3, Msg: "a"},
		{File: "main.yaml", Line: 3, Msg: "b"},
	}
	ps.Sort()
	if want := "main.yaml:3: a\nmain.yaml:3: b\nmain.yaml:9: c\npol.yaml:2: d"; ps.Err().Error() != want {
		t.Errorf("sorted = %q, want %q", ps.Error(), want)
	}
}
