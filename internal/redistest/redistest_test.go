package redistest

import (
	"context"
	"strings"
	"testing"
)

// TestDigestDiffs checks that two servers of one version are compared by
// DEBUG DIGEST-VALUE too, and that a value differing there is named.
func TestDigestDiffs(t *testing.T) {
	a, b := Start(t), Start(t)
	ctx := context.Background()
	ca, cb := Client(t, a, 0), Client(t, b, 0)
	if !digestable(ctx, ca, cb) {
		t.Fatal("two servers started alike do not both answer DEBUG DIGEST-VALUE")
	}
	ca.RPush(ctx, "l", "a", "b")
	cb.RPush(ctx, "l", "a", "b")
	ca.Set(ctx, "s", "1", 0)
	cb.Set(ctx, "s", "2", 0)
	d, err := digestDiffs(ctx, ca, cb, []string{"l", "s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || !strings.Contains(d[0], `key "s"`) {
		t.Errorf("digest differences %q, want one naming key s", d)
	}
}
