package records

import (
	"slices"
	"testing"
)

func TestReshape(t *testing.T) {
	var renames []Rename
	for _, s := range []string{"trial_*=free_*", "*:old=*:new", "exact=other", "a*b=c*"} {
		rn, err := ParseRename(s)
		if err != nil {
			t.Fatal(err)
		}
		renames = append(renames, rn)
	}
	r := Reshape{Renames: renames, Prefix: "app1:"}
	for _, tt := range []struct{ in, want string }{
		{"trial_42", "app1:free_42"},
		{"trial_", "app1:free_"},
		{"user:old", "app1:user:new"},
		{"exact", "app1:other"},
		{"exactly", "app1:exactly"},
		{"aXYb", "app1:cXY"},
		{"ab", "app1:c"},
		{"trial_x:old", "app1:free_x:old"}, // the first match wins
		{"plain", "app1:plain"},
	} {
		if got := r.Key(tt.in); got != tt.want {
			t.Errorf("Key(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// Sources undoes Key: the name is among those that take the key's.
		if src := r.Sources(tt.want); !slices.Contains(src, tt.in) {
			t.Errorf("Sources(%q) = %q, want %q among them", tt.want, src, tt.in)
		}
	}
	if src := r.Sources("app1:user:new"); len(src) != 2 || src[0] != "user:new" || src[1] != "user:old" {
		t.Errorf("Sources(app1:user:new) = %q, want the name kept and the one renamed", src)
	}
	if src := r.Sources("nope"); src != nil {
		t.Errorf("Sources(nope) = %q: without the prefix no key takes it", src)
	}
	for _, bad := range []string{"x", "=y", "a*b*=c", "a=b*", "a*=b**"} {
		if _, err := ParseRename(bad); err == nil {
			t.Errorf("ParseRename(%q) took it", bad)
		}
	}
	m, err := ParseDBMap("1=0, 2=3")
	if err != nil || m[1] != 0 || m[2] != 3 || len(m) != 2 {
		t.Errorf("ParseDBMap: %v %v", m, err)
	}
	for _, bad := range []string{"1", "1=x", "1=0,1=2", "-1=0"} {
		if _, err := ParseDBMap(bad); err == nil {
			t.Errorf("ParseDBMap(%q) took it", bad)
		}
	}
}
