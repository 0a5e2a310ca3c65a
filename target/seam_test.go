package target

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// writeCommands are the commands that change a server's keys.
var writeCommands = map[string]bool{}

func init() {
	for _, c := range strings.Fields(`APPEND COPY DECR DECRBY DEL EXPIRE EXPIREAT FLUSHALL FLUSHDB
		FUNCTION GETDEL GETEX GETSET HDEL HINCRBY HINCRBYFLOAT HMSET HPEXPIREAT HSET HSETNX INCR
		INCRBY INCRBYFLOAT LINSERT LMOVE LPOP LPUSH LREM LSET LTRIM MIGRATE MOVE MSET PERSIST
		PEXPIRE PEXPIREAT PSETEX RENAME RENAMENX RESTORE RPOP RPUSH SADD SET SETEX SETNX SETRANGE
		SMOVE SPOP SREM SWAPDB UNLINK VADD VREM VSETATTR XACK XADD XAUTOCLAIM XCFGSET XCLAIM XDEL
		XGROUP XIDMPRECORD XSETID XTRIM ZADD ZINCRBY ZPOPMAX ZPOPMIN ZREM ZUNIONSTORE`) {
		writeCommands[c] = true
	}
}

// clientWrites are go-redis's methods that write keys.
var clientWrites = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`Set SetNX SetEX Del Unlink HSet HMSet RPush LPush SAdd ZAdd
		XAdd XGroupCreate XGroupCreateMkStream XGroupSetID Restore RestoreReplace Expire ExpireAt
		PExpire PExpireAt Persist FlushAll FlushDB MSet Incr IncrBy Rename`) {
		clientWrites[m] = true
	}
}

// notTheProduct are the trees that may write as they please: the demo's
// and the benchmarks' data generators, the tests' helpers.
var notTheProduct = []string{"internal/cmd/", "internal/keyspace/", "internal/redistest/", "internal/s3test/", "e2e/"}

// namedElsewhere are the calls outside target/ that send a command whose
// name is not written in the call, each with why it writes nothing.
var namedElsewhere = map[string]string{
	"source/scan/read.go":        "reads each type by the read command of its table",
	"source/scan/big.go":         "reads a big key in windows, by its type's range or scan command",
	"verify/values.go":           "reads values by their type's read commands",
	"internal/redisconn/caps.go": "probes what a server has, on a key that does not exist: each probe is refused or reads",
}

// sourceProbes are the writes a source makes on itself, each with why.
var sourceProbes = map[string]string{
	"source/repl/notify.go": "writes probe keys of every type on the source, and deletes them, to see that their keyspace notifications arrive (where CONFIG is refused)",
}

// TestOnlyTargetWrites: no package but target/ sends a command that
// writes keys. It reads every non-test Go file of the module and finds
// each command sent: the name written in a call of Begin, Do or
// NewCmd, or a go-redis method that writes; a call whose command's name
// is not written there (Begin(name …), Do(ctx, args...)) sends what it
// is given, which only target/ may, or a file namedElsewhere says why it
// reads.
func TestOnlyTargetWrites(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	dynamic := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "target" && filepath.Dir(path) == root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		for _, p := range notTheProduct {
			if strings.HasPrefix(rel, p) {
				return nil
			}
		}
		if sourceProbes[rel] != "" {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			at := func(what string) {
				found = append(found, fset.Position(call.Pos()).String()[len(root)+1:]+": "+what)
			}
			method := sel.Sel.Name
			if x, ok := sel.X.(*ast.SelectorExpr); ok && x.Sel.Name == "router" {
				return true // through the target's Router
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "target" {
				return true // a function of this package
			}
			var name ast.Expr
			switch {
			case method == "Begin" && len(call.Args) == 2:
				name = call.Args[0]
			case (method == "Do" || method == "NewCmd") && len(call.Args) >= 2:
				name = call.Args[1]
				if call.Ellipsis.IsValid() && len(call.Args) == 2 {
					if namedElsewhere[rel] == "" {
						at("sends the commands it is given")
					}
					dynamic[rel] = true
					return true
				}
			case clientWrites[method] && len(call.Args) >= 1 && isCtx(call.Args[0]):
				at("go-redis " + method)
				return true
			default:
				return true
			}
			lit, ok := name.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				if namedElsewhere[rel] == "" {
					at("sends a command whose name it is given")
				}
				dynamic[rel] = true
				return true
			}
			if s, _ := strconv.Unquote(lit.Value); writeCommands[strings.ToUpper(s)] {
				at(strings.ToUpper(s))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(found)
	for _, f := range found {
		t.Errorf("a write outside target/: %s", f)
	}
	for file := range namedElsewhere {
		if !dynamic[file] {
			t.Errorf("%s is named in namedElsewhere but sends no command by a name it is given", file)
		}
	}
}

// isCtx reports whether e looks like a context argument.
func isCtx(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && strings.Contains(strings.ToLower(id.Name), "ctx")
}
