// Package rtype is the one table of the Redis types that crs carries as
// values (format's native types) and the commands that count and read
// each one. Adding a type starts in format (its name, its value field,
// its JSON shape in reader.go and writer.go), then here, then one place
// per layer: source/scan/big.go reads a large value in windows,
// load/commands.go writes it, verify/values.go compares it.
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
