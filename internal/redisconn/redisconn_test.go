package redisconn

import "testing"

func TestClientOptions(t *testing.T) {
	tests := []struct {
		name           string
		o              Options
		addr, user, pw string
		network        string
		db             int
		shown          string
	}{
		{"defaults", Options{DB: -1}, "127.0.0.1:6379", "", "", "tcp", -1, "127.0.0.1:6379"},
		{"url", Options{URL: "redis://bob:pw@db.example:6380/3", DB: -1}, "db.example:6380", "bob", "pw", "tcp", 3, "db.example:6380"},
		{"url db query", Options{URL: "redis://h:1?db=5", DB: -1}, "h:1", "", "", "tcp", 5, "h:1"},
		{"flags override url", Options{URL: "redis://:pw@h:1/2", Host: "other", Port: 7, Password: "flag", DB: 9}, "other:7", "", "flag", "tcp", 9, "other:7"},
		{"port only", Options{Port: 6380, DB: -1}, "127.0.0.1:6380", "", "", "tcp", -1, "127.0.0.1:6380"},
		{"unix", Options{URL: "unix:///tmp/r.sock", DB: -1}, "/tmp/r.sock", "", "", "unix", -1, "unix:///tmp/r.sock"},
		{"tls", Options{URL: "rediss://h:6380", DB: -1}, "h:6380", "", "", "tcp", -1, "rediss://h:6380"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro, err := tt.o.ClientOptions()
			if err != nil {
				t.Fatal(err)
			}
			if ro.Addr != tt.addr || ro.Username != tt.user || ro.Password != tt.pw || ro.Network != tt.network {
				t.Errorf("got %s %s %q %q, want %s %s %q %q", ro.Network, ro.Addr, ro.Username, ro.Password, tt.network, tt.addr, tt.user, tt.pw)
			}
			if ro.Protocol != 2 {
				t.Errorf("protocol %d", ro.Protocol)
			}
			if db, err := tt.o.SelectedDB(); err != nil || db != tt.db {
				t.Errorf("db %d (%v), want %d", db, err, tt.db)
			}
			if got := tt.o.Address(); got != tt.shown {
				t.Errorf("Address() = %q, want %q", got, tt.shown)
			}
		})
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"http://h:1", "redis://:secret@h:1/notadb"} {
		o := Options{URL: u, DB: -1}
		_, err1 := o.ClientOptions()
		_, err2 := o.SelectedDB()
		if err1 == nil && err2 == nil {
			t.Errorf("%s accepted", u)
		}
		for _, err := range []error{err1, err2} {
			if err != nil && contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %v", err)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:secret@h:1/0": "redis://user:xxxxx@h:1/0",
		"redis://:secret@h:1":       "redis://:xxxxx@h:1",
		"redis://h:1":               "redis://h:1",
		"rediss://u@h:1":            "rediss://u@h:1",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseServer(t *testing.T) {
	redis := ParseServer("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n")
	if redis.Engine != "redis" || redis.Version != "7.0.15" || !redis.AtLeast(7, 0) || redis.AtLeast(7, 1) {
		t.Errorf("%+v", redis)
	}
	valkey := ParseServer("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.1.0\r\n")
	if valkey.Engine != "valkey" || valkey.Version != "8.1.0" || !valkey.AtLeast(8, 0) {
		t.Errorf("%+v", valkey)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestLocal(t *testing.T) {
	for _, tt := range []struct {
		o    Options
		want bool
	}{
		{Options{DB: -1}, true},
		{Options{URL: "redis://localhost:6380", DB: -1}, true},
		{Options{URL: "redis://[::1]:6380", DB: -1}, true},
		{Options{URL: "unix:///tmp/r.sock", DB: -1}, true},
		{Options{Host: "127.0.0.2", DB: -1}, true},
		{Options{URL: "redis://db.example:6380", DB: -1}, false},
		{Options{Host: "10.0.0.5", DB: -1}, false},
		{Options{URL: "rediss://h:6380", DB: -1}, false},
	} {
		if got := tt.o.Local(); got != tt.want {
			t.Errorf("%+v: Local() = %v, want %v", tt.o, got, tt.want)
		}
	}
}
