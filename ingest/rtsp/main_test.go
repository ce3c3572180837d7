package rtsp_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/internal/testenv"
)

// Every session, pull loop and listener of the RTSP server has ended when
// the tests have.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(testenv.ChildSupervisor))
}
