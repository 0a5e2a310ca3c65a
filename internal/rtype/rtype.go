// Package rtype is the one table of the Redis commands that count and
// read each type crs carries as a value, and the map of where a type
// lives. Adding a type is one place per layer:
//
//   - format: a row of the table in format/types.go (its JSON shape, what
//     a Writer checks, whether it may be empty, what its length counts,
//     whether its parts append), its value field on format.Record and its
//     parse and append functions beside the row (FORMAT.md says the shape);
//   - here: a row of types (the commands that count and read it);
//   - rdb/value.go: its RDB encodings, decoded to records;
//   - source/scan/read.go: read whole over SCAN, and source/scan/big.go
//     in windows when large;
//   - target/commands.go: the commands that write it;
//   - verify/values.go: how two values of it are compared.
//
// A type with more to it than elements gets a file of its own in a layer
// beside these (streams and vector sets: stream.go, vectorset.go in
// format, rdb and source/scan), and a type a target may lack a check in
// load/preflight.go. The selection, the consumers (stats, dump, sync) and
// the targets take records as they come. A type carried as a DUMP payload
// (a module's) needs none of this.
package rtype

import "github.com/crs-tool/crs/format"

// Type is what crs knows of one Redis type.
type Type struct {
	// Len is the command that counts its elements (bytes, for a string).
	Len string
	// Read is the command that reads a whole value, with the arguments
	// that follow the key; empty for a type read otherwise (a stream).
	Read []string
	// Elements says the value is a collection, read in windows of
	// elements when it is large.
	Elements bool
}

var types = map[string]Type{
	format.TypeString: {Len: "STRLEN", Read: []string{"GET"}},
	format.TypeList:   {Len: "LLEN", Read: []string{"LRANGE", "0", "-1"}, Elements: true},
	format.TypeSet:    {Len: "SCARD", Read: []string{"SMEMBERS"}, Elements: true},
	format.TypeHash:   {Len: "HLEN", Read: []string{"HGETALL"}, Elements: true},
	format.TypeZSet:   {Len: "ZCARD", Read: []string{"ZRANGE", "0", "-1", "WITHSCORES"}, Elements: true},
	format.TypeStream: {Len: "XLEN"},
	// A vector set is read element by element (source/scan/vectorset.go).
	format.TypeVectorSet: {Len: "VCARD"},
}

// Of returns what crs knows of the type that TYPE names, and whether it is
// one crs carries as a value.
func Of(name string) (Type, bool) {
	t, ok := types[name]
	return t, ok
}

// Len returns the command that counts a type's elements, or "".
func Len(name string) string { return types[name].Len }
