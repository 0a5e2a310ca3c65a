// The end-to-end tests of crs sync: crs run as a user runs it, against
// servers the tests start, in a package of their own so that they run
// beside the other end-to-end tests.
package sync_test

import (
	"testing"

	"github.com/crs-tool/crs/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }
