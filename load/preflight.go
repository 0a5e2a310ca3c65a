package load

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyset"
	"github.com/crs-tool/crs/internal/keyslot"
	"github.com/crs-tool/crs/internal/redisconn"
	"github.com/crs-tool/crs/records"
	"github.com/crs-tool/crs/target"
)

// ErrTargetMemory is returned when the target's maxmemory leaves too
// little room for the dump.
var ErrTargetMemory = errors.New("the target has too little memory")

// PreflightError lists every problem the checks before a load found;
// nothing was written. It matches ErrTargetNotEmpty, ErrTargetLacks and
// ErrTargetMemory with errors.Is, as its problems do.
type PreflightError struct {
	Problems []error
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "%v; nothing was written", e.Problems[0])
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems, nothing was written:", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  - %v", p)
	}
	return b.String()
}

func (e *PreflightError) Unwrap() []error { return e.Problems }

// targetInfo is what the checks before a load learn of the target.
type targetInfo struct {
	serverInfo               // of the first node; the oldest, with several
	nodes      int           // servers written to
	cluster    bool          // a Redis Cluster
	keyspace   map[int]int64 // keys per database, on all nodes
	maxmemory  int64         // the smallest node's, 0: no limit
	used       int64         // used_memory of that node
	policy     string        // its maxmemory_policy
	keyRules   string        // the ACL user may not write every key: why
	databases  int           // the databases setting (of the first node), 0 if it would not say
}

// probe connects to every node of the target and reads what the checks
// need.
func probe(ctx context.Context, opts Options) (targetInfo, error) {
	tgt, err := target.Open(ctx, opts.Conn)
	if err != nil {
		return targetInfo{}, err
	}
	defer tgt.Close()
	cluster := tgt.SlotRouted()
	cs, infos, err := nodeClients(ctx, tgt)
	if err != nil {
		return targetInfo{}, err
	}
	defer closeAll(cs)
	ti := targetInfo{serverInfo: infos[0], nodes: len(cs), cluster: cluster, keyspace: map[int]int64{}}
	if kv, err := cs[0].ConfigGet(ctx, "databases").Result(); err == nil {
		ti.databases, _ = strconv.Atoi(kv["databases"])
	}
	for i, c := range cs {
		if !infos[i].AtLeast(ti.Major, ti.Minor) {
			ti.serverInfo = infos[i]
		}
		ks, err := redisconn.Keyspace(ctx, c)
		if err != nil {
			return ti, err
		}
		for db, n := range ks {
			ti.keyspace[db] += n
		}
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return ti, fmt.Errorf("info memory: %w", err)
		}
		f := redisconn.InfoFields(info)
		maxmem, _ := strconv.ParseInt(f["maxmemory"], 10, 64)
		used, _ := strconv.ParseInt(f["used_memory"], 10, 64)
		if i == 0 || (maxmem > 0 && (ti.maxmemory == 0 || maxmem-used < ti.maxmemory-ti.used)) {
			ti.maxmemory, ti.used, ti.policy = maxmem, used, f["maxmemory_policy"]
		}
		if ti.keyRules == "" {
			if ti.keyRules, err = keyRules(ctx, c, opts.ProbeKeys, opts.ProbeAny); err != nil {
				return ti, err
			}
		}
	}
	return ti, nil
}

// keyRules checks that the ACL user may write keys (the pre-flight of its
// key rules): an error when it may not write a key the selection takes;
// what to say when it may not write a made-up one (anyKey).
func keyRules(ctx context.Context, c *redis.Client, keys []string, anyKey bool) (string, error) {
	why := "the load stops at the first key it may not write"
	err := redisconn.CheckKeyAccess(ctx, c, c.Options().Addr, keys, why)
	if err != nil && anyKey {
		return fmt.Sprintf("; BEWARE: the ACL user may not write every key (it may not touch %q), so a key of the dump outside its ~pattern rules stops the load there (--match takes only the keys it may write)", keys[0]), nil
	}
	return "", err
}

// preflight lists the problems that the header alone shows: target
// databases that hold keys, and too little memory.
func preflight(hdr format.Header, ti targetInfo, opts Options) []error {
	var problems []error
	if !opts.Replace && !opts.SkipExisting && !opts.Resume {
		db, _ := opts.Conn.SelectedDB()
		dbs, all := mustBeEmpty(hdr, db)
		if busy := busyDatabases(ti.keyspace, dbs, all); len(busy) > 0 {
			problems = append(problems, notEmpty(busy))
		}
	}
	// A cluster has database 0 only (Valkey 9 has more).
	if db, _ := opts.Conn.SelectedDB(); ti.cluster && db != 0 && !(ti.Engine == "valkey" && ti.AtLeast(9, 0)) {
		var others []string
		for _, d := range hdr.Databases {
			if d.DB != 0 {
				others = append(others, fmt.Sprintf("db %d (%d keys)", d.DB, d.Keys))
			}
		}
		if hdr.Databases == nil || len(others) > 0 {
			what := "may hold keys in databases other than 0 (it does not list them)"
			if len(others) > 0 {
				what = "holds keys in " + strings.Join(others, ", ")
			}
			problems = append(problems, fmt.Errorf("%w: the dump %s, and a Redis Cluster has database 0 only: use --db 0 to load every database into it (keys that are in two databases then collide, and the load stops)", ErrTargetLacks, what))
		}
	}
	if p := missingDatabases(hdr, ti, opts); p != nil {
		problems = append(problems, p)
	}
	// Each node takes its share of the keys.
	if need := hdr.MemoryBytes / int64(max(ti.nodes, 1)); need > 0 && ti.maxmemory > 0 && ti.used+need > ti.maxmemory && !opts.IgnoreMemory {
		what := "the load would stop part way with OOM errors"
		if ti.policy != "" && ti.policy != "noeviction" {
			what = fmt.Sprintf("maxmemory-policy %s would evict keys, losing data without an error", ti.policy)
		}
		problems = append(problems, fmt.Errorf("%w: the dump's keys took about %s on the source, and the target has %s in use of maxmemory %s: %s. Raise maxmemory (or --ignore-memory to load anyway)",
			ErrTargetMemory, mib(need), mib(ti.used), mib(ti.maxmemory), what))
	}
	return problems
}

// missingDatabases names the databases the dump's header lists that the
// target does not have (its databases setting), or the one --db names.
func missingDatabases(hdr format.Header, ti targetInfo, opts Options) error {
	if ti.databases <= 0 || ti.cluster {
		return nil
	}
	if db, _ := opts.Conn.SelectedDB(); db >= 0 {
		if db < ti.databases {
			return nil
		}
		return target.PastDatabases(db, ti.databases)
	}
	var past []string
	for _, d := range hdr.Databases { // as --db-map maps them
		if d.DB >= ti.databases {
			past = append(past, fmt.Sprintf("db %d (%d keys)", d.DB, d.Keys))
		}
	}
	if len(past) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the dump holds keys in %s, and the target has %d databases (its databases setting, 0 to %d): raise it, or move them with --db-map", ErrTargetLacks, strings.Join(past, ", "), ti.databases, ti.databases-1)
}

func notEmpty(busy []string) error {
	return fmt.Errorf("%w (%s): use --replace to overwrite the keys the dump holds, or --skip-existing to keep the target's", ErrTargetNotEmpty, strings.Join(busy, ", "))
}

// busyDatabases describes those of dbs (with all, of every database) that
// hold keys.
func busyDatabases(keyspace map[int]int64, dbs []int, all bool) []string {
	if all {
		dbs = dbs[:0]
		for db := range keyspace {
			dbs = append(dbs, db)
		}
		sort.Ints(dbs)
	}
	var busy []string
	for _, db := range dbs {
		if n := keyspace[db]; n > 0 {
			busy = append(busy, fmt.Sprintf("db %d has %d keys", db, n))
		}
	}
	return busy
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// needsScan reports whether the target may lack a command the dump's
// records need, which only reading every record can tell.
func needsScan(hdr format.Header, t serverInfo, opts Options) bool {
	if !hdr.NoFieldExpiry && !t.FieldExpiry && !opts.DropFieldExpiry {
		return true
	}
	if lacksModule(hdr, t) {
		return true
	}
	// Streams came with 5.0 (consumers without pending entries are made
	// with XGROUP CREATECONSUMER from 6.2, by XREADGROUP before), their
	// counters with 7.0; a source older than 5.0 has no streams. A version
	// that does not parse (major 0) may have anything.
	if opts.CheckCollisions {
		return true
	}
	major, minor := redisconn.ParseVersion(hdr.ServerVersion)
	// Function libraries came with Redis 7.0: a source of 7.0 or later
	// may have some, which a target before it has no command for.
	if !t.AtLeast(7, 0) && !opts.SkipFunctions && (major == 0 || major >= 7) {
		return true
	}
	// Idempotent producers came with Redis 8.6 (a dump that does not say
	// its server's version is older than them: crs writes it since).
	if !t.IDMP && !opts.DropStreamIDMP && hdr.Engine != "valkey" && (major > 8 || major == 8 && minor >= 6) {
		return true
	}
	return !t.AtLeast(7, 0) && (major == 0 || major >= 5) && !(t.AtLeast(5, 0) && opts.DropStreamCounters)
}

// lacksModule reports whether the source may have had a module (or
// vector sets) the target lacks: a dump that does not say which modules
// its source had may hold vector sets.
func lacksModule(hdr format.Header, t serverInfo) bool {
	if hdr.Modules == nil {
		return !t.VectorSets
	}
	for _, m := range hdr.Modules {
		if m == "vectorset" {
			if !t.VectorSets {
				return true
			}
			continue
		}
		if has, known := t.HasModule(m); known && !has {
			return true
		}
	}
	return false
}

// moduleOfType names the module that defines a module type, for the
// modules crs knows; a dump's DUMP payload of that type loads only where
// the module is.
var moduleOfType = map[string]string{
	"vectorset": "vectorset",
	"ReJSON-RL": "ReJSON",
	"MBbloom--": "bf", "MBbloomCF": "bf", "TopK-TYPE": "bf", "CMSk-TYPE": "bf", "TDIS-TYPE": "bf",
	"TSDB-TYPE": "timeseries",
}

// moduleNeed returns the need of a module type's keys, or nil when the
// target has the module, does not say, or --skip-unsupported is to skip
// the keys the target refuses.
func moduleNeed(typ string, t serverInfo, opts Options) *need {
	if typ == format.TypeVectorSet {
		return &need{what: "vector sets", cmd: "VADD (Redis 8.0+, or the vectorset module on 7.x)", lacks: !t.VectorSets}
	}
	mod, ok := moduleOfType[typ]
	has, known := t.HasModule(mod)
	switch {
	case !known || opts.SkipUnsupported:
		return nil
	case !ok && len(t.Modules) == 0:
		return &need{what: fmt.Sprintf("the module type %q (DUMP payloads)", typ), cmd: "its module, and the target has none loaded", lacks: true}
	case ok && !has:
		return &need{what: fmt.Sprintf("the module type %q (DUMP payloads)", typ), cmd: fmt.Sprintf("the module %q", mod), lacks: true}
	}
	return nil
}

// need is one kind of data a target must have a command for, and the keys
// that have it.
type need struct {
	what  string // what the keys have
	cmd   string // the command, and the version that brought it
	hint  string // the option that loads without it
	dump  bool   // counted as the dump's (function libraries), not as keys'
	lacks bool   // the target lacks it
	n     int
	keys  []string // the first few

	lastDB  int // the key counted last, whose later parts count no more
	lastKey string
}

// add counts rec's key, once however many of its parts (or groups) have
// the data: a key's records are consecutive.
func (n *need) add(rec *format.Record) {
	if !n.lacks || (n.n > 0 && n.lastDB == rec.DB && n.lastKey == rec.Key) {
		return
	}
	n.lastDB, n.lastKey = rec.DB, rec.Key
	if n.n < 10 {
		n.keys = append(n.keys, fmt.Sprintf("%q (db %d)", rec.Key, rec.DB))
	}
	n.n++
}

// problem is the error of a need the target lacks that keys have; nil
// when there is none.
func (n *need) problem(t serverInfo) error {
	if !n.lacks || n.n == 0 {
		return nil
	}
	more := ""
	if n.n > len(n.keys) {
		more = fmt.Sprintf(" and %d more", n.n-len(n.keys))
	}
	has := fmt.Sprintf("%d keys have %s", n.n, n.what)
	if n.dump {
		has = fmt.Sprintf("the dump holds %d %s", n.n, n.what)
	}
	return fmt.Errorf("%w: %s, which need %s, and the target is %s %s: %s%s%s",
		ErrTargetLacks, has, n.cmd, t.Engine, t.Version, strings.Join(n.keys, ", "), more, n.hint)
}

// needs is what scanNeeds counts: the data the target lacks commands
// for, keys written twice, hash tags a rename moves.
type needs struct {
	t                                            serverInfo
	opts                                         Options
	cluster                                      bool
	fieldExp, streams, counters, functions, idmp *need
	modules                                      map[string]*need
	moduleOrder                                  []*need
	seen                                         *keyset.Seen // nil: no check of keys written twice
	collided, tagMoved                           []string
	collisions, tagMoves                         int64
}

func newNeeds(t serverInfo, cluster bool, opts Options) *needs {
	n := &needs{t: t, opts: opts, cluster: cluster, modules: map[string]*need{},
		fieldExp: &need{what: "hash field expiries", cmd: "HPEXPIREAT (Redis 7.4+)", lacks: !t.FieldExpiry && !opts.DropFieldExpiry,
			hint: "; use --drop-field-expiry to load them without"},
		streams: &need{what: "streams", cmd: "XADD (Redis 5.0+)", lacks: !t.AtLeast(5, 0)},
		counters: &need{what: "stream counters (entries-read, entries-added, max-deleted-entry-id)", cmd: "XSETID ... ENTRIESADDED MAXDELETEDID and XGROUP CREATE ... ENTRIESREAD (Redis 7.0+)", lacks: !t.AtLeast(7, 0) && !opts.DropStreamCounters,
			hint: "; use --drop-stream-counters to load the streams (entries, groups, consumers, pending entries) without the counters"},
		functions: &need{what: "function libraries", cmd: "FUNCTION LOAD (Redis 7.0+)", lacks: !t.AtLeast(7, 0) && !opts.SkipFunctions, dump: true,
			hint: "; use --skip-functions to load the keys without them"},
		idmp: &need{what: "streams' idempotent-producer state (idmp settings other than the defaults, or tracked producer IDs)", cmd: "XCFGSET and XIDMPRECORD (Redis 8.6.2+)", lacks: !t.IDMP && !opts.DropStreamIDMP,
			hint: "; use --drop-stream-idmp to load the streams without it (a producer that retries after the move may then add an entry twice)"},
	}
	if opts.CheckCollisions {
		n.seen = keyset.NewSeen(opts.SeenLimit, 0)
	}
	return n
}

// add counts what rec has.
func (n *needs) add(rec *format.Record) error {
	if rec.Type == format.TypeFunction {
		n.functions.add(rec)
		return nil
	}
	if n.cluster && rec.From != "" && rec.Part <= 1 {
		// Keys that share a hash tag share a slot, which multi-key
		// commands on them need: a rename must keep it.
		if _, tagged := keyslot.Tag(rec.From); tagged && keyslot.Slot(rec.From) != keyslot.Slot(rec.Key) {
			if n.tagMoves++; len(n.tagMoved) < 10 {
				n.tagMoved = append(n.tagMoved, fmt.Sprintf("%q → %q", rec.From, rec.Key))
			}
		}
	}
	if n.seen != nil && rec.Part <= 1 {
		v, err := n.seen.Add(rec.DB, rec.Key, 0)
		if err != nil {
			return err
		}
		if v == keyset.Twice {
			n.collide(rec.DB, rec.Key)
		}
	}
	if len(rec.FieldExpire) > 0 {
		n.fieldExp.add(rec)
	}
	if rec.Type == format.TypeVectorSet || rec.Dump != "" {
		m, known := n.modules[rec.Type]
		if !known {
			m = moduleNeed(rec.Type, n.t, n.opts)
			n.modules[rec.Type] = m
			if m != nil {
				n.moduleOrder = append(n.moduleOrder, m)
			}
		}
		if m != nil {
			m.add(rec)
		}
	}
	if s := rec.Stream; s != nil {
		n.stream(rec, s)
	}
	return nil
}

// stream counts what a stream record has.
func (n *needs) stream(rec *format.Record, s *format.Stream) {
	n.streams.add(rec)
	if format.IDMPState(s.IDMP) {
		n.idmp.add(rec)
	}
	if s.LastID != "" && (s.EntriesAdded >= 0 || s.MaxDeletedID != "") {
		n.counters.add(rec)
	}
	for _, g := range s.Groups {
		if g.LastDeliveredID != "" && g.EntriesRead >= 0 {
			n.counters.add(rec)
		}
	}
}

func (n *needs) collide(db int, key string) {
	if n.collisions++; len(n.collided) < 10 {
		n.collided = append(n.collided, fmt.Sprintf("%q (db %d)", key, db))
	}
}

// problems finishes the count (the keys remembered on disk) and returns
// the problems found.
func (n *needs) problems() ([]error, error) {
	if n.seen != nil {
		err := n.seen.Finish(func(db int, key string, _ int64, dup bool) error {
			if dup {
				n.collide(db, key)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var problems []error
	if n.tagMoves > 0 {
		problems = append(problems, fmt.Errorf("%w: %d keys with a hash tag would go to another slot than their tag's (the keys that share their tag would no longer share a slot, which multi-key commands and transactions on them need): %s; keep the {tag} part in --rename", ErrSlotMoved, n.tagMoves, strings.Join(n.tagMoved, ", ")))
	}
	if n.collisions > 0 {
		problems = append(problems, fmt.Errorf("%w: %d keys would be written twice, two source keys becoming one on the target (by --rename, --key-prefix or --db-map, or a dump that holds a key twice): %s", ErrDuplicateKey, n.collisions, strings.Join(n.collided, ", ")))
	}
	for _, m := range append([]*need{n.functions, n.fieldExp, n.streams, n.counters, n.idmp}, n.moduleOrder...) {
		if err := m.problem(n.t); err != nil {
			problems = append(problems, err)
		}
	}
	return problems, nil
}

// scanNeeds reads the whole dump in and returns the problems of the data
// the target has no command for.
func scanNeeds(ctx context.Context, in records.Input, t serverInfo, cluster bool, opts Options) (_ []error, err error) {
	r, err := in.Skim(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if _, serr := r.Close(); err == nil {
			err = serr
		}
	}()
	n := newNeeds(t, cluster, opts)
	if n.seen != nil {
		defer n.seen.Close()
	}
	if err := records.Each(ctx, r, n.add); err != nil {
		return nil, err
	}
	return n.problems()
}
