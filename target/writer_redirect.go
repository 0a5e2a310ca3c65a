package target

import (
	"context"
	"errors"
	"fmt"

	"github.com/crs-tool/crs/internal/resp"
)

// Where a writer sends a batch: its own node, or, in a cluster, the node a
// MOVED or ASK reply names.

// connKey names a connection of a Writer: its own node's (addr "") or
// another node's that a cluster redirected a key to.
type connKey struct {
	addr string
	db   int
}

// final marks an error of connecting that retrying cannot mend.
type final struct{ error }

func (e final) Unwrap() error { return e.error }

func (w *Writer) connFor(ctx context.Context, db int) (*resp.Conn, error) {
	return w.connTo(ctx, connKey{db: db})
}

func (w *Writer) connTo(ctx context.Context, k connKey) (*resp.Conn, error) {
	if c := w.conns[k]; c != nil {
		return c, nil
	}
	if n := w.o.Databases; n > 0 && k.db >= n {
		return nil, final{PastDatabases(k.db, n)}
	}
	c, err := Dial(ctx, w.conn, k.addr, k.db)
	var refused resp.ServerError
	if errors.As(err, &refused) && !refused.Passing() {
		// The server answered and refused (a database it does not have,
		// a password it does not take): trying again cannot help.
		return nil, final{fmt.Errorf("db %d: %w", k.db, err)}
	}
	if err != nil {
		return nil, err
	}
	if w.conns == nil {
		w.conns = make(map[connKey]*resp.Conn)
	}
	w.conns[k] = c
	return c, nil
}

// noteRedirection reports whether a refusal redirects the plan's key to
// another node (the target says), and notes where.
func (w *Writer) noteRedirection(refusal string, pl *planned) bool {
	addr, ask, ok := w.tgt.Redirection(refusal)
	if ok {
		pl.redirect, pl.ask, pl.refused = addr, ask, true
	}
	return ok
}

// redirected writes again, on the nodes a cluster named, the keys it
// redirected (MOVED after a slot moved, ASK while it moves), each from
// scratch after a DEL, as after a lost connection; a later part of a
// key cannot be, and fails saying how to finish. It follows up to five
// redirections of a key.
func (w *Writer) redirected(ctx context.Context, db int, plans []planned) error {
	for hop := 0; hop < 5; hop++ {
		groups := map[connKey][]planned{}
		asks := map[connKey]bool{}
		for _, pl := range plans {
			if pl.redirect == "" {
				continue
			}
			r := pl.it.Rec
			if r.Part > 1 {
				return &KeyError{Line: pl.it.Line, DB: db, Key: r.Key, Err: fmt.Errorf("the cluster moved the key's slot to %s between its parts; load the dump again with --replace", pl.redirect)}
			}
			k := connKey{addr: pl.redirect, db: db}
			pl.redirect = ""
			groups[k] = append(groups[k], pl)
			asks[k] = pl.ask
		}
		if len(groups) == 0 {
			return nil
		}
		w.st.Redirects++
		for k := range groups {
			if !asks[k] {
				w.tgt.Moved(ctx)
				break
			}
		}
		plans = plans[:0:0]
		for k, g := range groups {
			c, err := w.connTo(ctx, k)
			if err != nil {
				return err
			}
			w.asking = asks[k]
			err = w.sendOn(ctx, c, db, g, true)
			w.asking = false
			if err != nil {
				if errors.Is(err, resp.ErrLost) {
					delete(w.conns, k)
				}
				return err
			}
			plans = append(plans, g...)
		}
	}
	return fmt.Errorf("the cluster redirected keys more than five times: is it resharding in a loop?")
}
