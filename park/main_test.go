package park

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a ringback goroutine or a timer
// callback running: every goroutine of the lot must end on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
