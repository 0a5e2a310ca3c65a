package repl

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/internal/redisserver"
	"github.com/crs-tool/crs/internal/redistest"
)

func options(s *redisserver.Server) redisconn.Options {
	o := redisconn.NewOptions()
	o.URL = s.URL
	return o
}

// TestLink: a full resynchronization puts the snapshot on disk; the
// commands written after it arrive in order, in their databases, with
// offsets that rise up to the server's master_repl_offset; a link continued
// from an acknowledged position gets only what came after it.
func TestLink(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	c := redistest.Client(t, s, 0)
	c.Set(ctx, "before", "1", 0)
	l, err := Dial(ctx, Options{Conn: options(s), Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Reply().Full {
		t.Fatal("the first PSYNC was not a full resynchronization")
	}
	if fi, err := os.Stat(l.Snapshot()); err != nil || fi.Size() == 0 {
		t.Fatalf("the snapshot: %v", err)
	}
	c.Set(ctx, "after", "2", 0)
	redistest.Client(t, s, 5).RPush(ctx, "list", "x")
	var seen []string
	var last int64
	for len(seen) < 2 {
		cmd, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Offset < last || cmd.End <= cmd.Offset {
			t.Fatalf("offsets %d to %d after %d", cmd.Offset, cmd.End, last) // SELECTs are not returned, and leave gaps
		}
		last = cmd.End
		if name := strings.ToUpper(cmd.Args[0]); name == "SET" || name == "RPUSH" {
			seen = append(seen, strconv.Itoa(cmd.DB)+":"+name+" "+cmd.Args[1])
		}
	}
	if strings.Join(seen, ",") != "0:SET after,5:RPUSH list" {
		t.Errorf("commands %q", seen)
	}
	info, _ := c.Info(ctx, "replication").Result()
	if off, _ := strconv.ParseInt(redisconn.InfoFields(info)["master_repl_offset"], 10, 64); last > off {
		t.Errorf("the link's offset %d is past the server's %d", last, off)
	}
	l.Ack(last, true)
	l.Close()
	c.Set(ctx, "later", "3", 0)
	l2, err := Dial(ctx, Options{Conn: options(s), Dir: t.TempDir()}, &Position{ReplID: l.Reply().Position.ReplID, Offset: last})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Reply().Full {
		t.Fatal("continuing from an acknowledged position took a full resynchronization")
	}
	for {
		cmd, err := l2.Next()
		if err != nil {
			t.Fatal(err)
		}
		if strings.EqualFold(cmd.Args[0], "set") {
			if cmd.Args[1] != "later" || cmd.Offset < last {
				t.Fatalf("continued with %q at %d, want SET later after %d", cmd.Args, cmd.Offset, last)
			}
			break
		}
	}
}

// TestServerAtACutover: DumpsAt reads keys with the offset the server had
// then; RefuseWrites has every write refused with NOREPLICAS and says
// how to undo it; a server made a replica is Demoted.
func TestServerAtACutover(t *testing.T) {
	ctx := context.Background()
	s, other := redistest.Start(t), redistest.Start(t)
	c := redistest.Client(t, s, 0)
	c.Set(ctx, "k", "v", time.Hour)
	srv, err := OpenServer(ctx, options(s))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dumps, offsets, err := srv.DumpsAt(ctx, "", 0, []string{"k", "gone"})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := c.Info(ctx, "replication").Result()
	off, _ := strconv.ParseInt(redisconn.InfoFields(info)["master_repl_offset"], 10, 64)
	if dumps[0].Payload == nil || dumps[0].ExpireAtMs == 0 || dumps[1].Payload != nil || offsets[0] != off || offsets[1] != off {
		t.Errorf("DumpsAt: %+v at %v, the server at %d", dumps, offsets, off)
	}
	undo, err := srv.RefuseWrites(ctx)
	if err != nil || undo != "CONFIG SET min-replicas-to-write 0" {
		t.Fatalf("RefuseWrites: %q, %v", undo, err)
	}
	if err := c.Set(ctx, "k", "w", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOREPLICAS") {
		t.Errorf("a write after RefuseWrites: %v", err)
	}
	if err := srv.Demoted(ctx); err != nil {
		t.Errorf("a master Demoted: %v", err)
	}
	host, port, _ := strings.Cut(other.Addr, ":")
	c.Do(ctx, "REPLICAOF", host, port)
	if err := srv.Demoted(ctx); !errors.Is(err, ErrNotMaster) || !strings.Contains(err.Error(), other.Addr) {
		t.Errorf("a replica Demoted: %v", err)
	}
}
