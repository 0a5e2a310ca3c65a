package format

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// SetFormat names a dump set's part entries.
const SetFormat = "crs-set"

// A dump set is a directory holding a dump in N parts, each an ordinary
// dump of one share of the keys (crsdump --part I/N), and next to each
// part its entry: a small JSON object written, atomically, only once the
// part's dump is complete (FORMAT.md §8). The set is complete when all N
// entries are there; processes on different machines can each write
// their parts into one set without telling each other.

// PartEntry describes one part of a dump set.
type PartEntry struct {
	Format     string           `json:"format"`  // SetFormat
	Version    int              `json:"version"` // 1
	Part       int              `json:"part"`    // I, from 0
	Parts      int              `json:"parts"`   // N
	Slots      [2]int           `json:"slots"`   // the cluster hash slots of its keys, both included
	File       string           `json:"file"`    // the dump's file name, in the set's directory
	Bytes      int64            `json:"bytes"`   // the file's size
	CRC32C     string           `json:"crc32c"`  // of the file's bytes, as written (8 hex digits)
	Records    int64            `json:"records"`
	Keys       int64            `json:"keys"`
	KeysByDB   map[string]int64 `json:"keys_by_db"`
	Source     string           `json:"source"`
	CRSVersion string           `json:"crs_version"`
	StartedMs  int64            `json:"started_ms"`
	FinishedMs int64            `json:"finished_ms"`
}

// PartName is the name of part i of n, without an extension: the entry is
// NAME.json, the dump NAME.jsonl.zst (or NAME.jsonl uncompressed).
func PartName(i, n int) string { return fmt.Sprintf("part-%04d-of-%04d", i, n) }

var entryName = regexp.MustCompile(`^part-(\d{4,})-of-(\d{4,})\.json$`)

// EntryName is the file name of the entry of part i of n.
func EntryName(i, n int) string { return PartName(i, n) + ".json" }

// IsSet reports whether fsys holds at least one part entry at its top.
func IsSet(fsys fs.FS) bool {
	names, err := fs.Glob(fsys, "part-*-of-*.json")
	return err == nil && len(names) > 0
}

// ReadPartsList reads a list of a set's parts, as crs stats --list
// prints them: a line per part whose first field is I/N; lines that
// start with ';', blank lines and the heading are passed over.
func ReadPartsList(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--parts-file: %w", err)
	}
	parts := []int{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], ";") || f[0] == "part" {
			continue
		}
		is, _, ok := strings.Cut(f[0], "/")
		n, err := strconv.Atoi(is)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("--parts-file %s: line %d: %q is not a part (I/N first, as crs stats --list prints it)", path, i+1, f[0])
		}
		parts = append(parts, n)
	}
	return parts, nil
}

// ErrSet is wrapped by the errors of a set that is not whole.
var ErrSet = errors.New("dump set")

// ReadSet reads the part entries of the set at the top of fsys (named
// dir in errors), in part order, and checks the set: every part of
// 0..N-1 there once, with the same N, its file as large as its entry
// says; or, where the set has of parts, part only alone. Its errors name
// the part and what is wrong. It lists the set once and reads each entry.
func ReadSet(fsys fs.FS, dir string, only, of int) ([]PartEntry, error) {
	list, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrSet, dir, err)
	}
	sizes := map[string]int64{}
	byPart := map[int]PartEntry{}
	n := 0
	for _, d := range list {
		if fi, err := d.Info(); err == nil {
			sizes[d.Name()] = fi.Size()
		}
		m := entryName.FindStringSubmatch(d.Name())
		if m == nil {
			continue
		}
		b, err := fs.ReadFile(fsys, d.Name())
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrSet, dir, err)
		}
		var e PartEntry
		if err := json.Unmarshal(b, &e); err != nil || e.Format != SetFormat {
			return nil, fmt.Errorf("%w %s: %s is not a part entry of a crs dump set", ErrSet, dir, d.Name())
		}
		i, _ := strconv.Atoi(m[1])
		parts, _ := strconv.Atoi(m[2])
		switch {
		case e.Part != i || e.Parts != parts || e.Parts < 1 || e.Part < 0 || e.Part >= e.Parts:
			return nil, fmt.Errorf("%w %s: %s says it is part %d of %d", ErrSet, dir, d.Name(), e.Part, e.Parts)
		case n != 0 && e.Parts != n:
			return nil, fmt.Errorf("%w %s: parts of two sets, of %d and of %d parts: one set to a directory", ErrSet, dir, n, e.Parts)
		}
		n = e.Parts
		byPart[e.Part] = e
	}
	if n == 0 {
		return nil, fmt.Errorf("%w %s: no part entries (part-NNNN-of-NNNN.json)", ErrSet, dir)
	}
	var entries []PartEntry
	for i := 0; i < n; i++ {
		if of == n && i != only {
			continue
		}
		e, ok := byPart[i]
		if !ok {
			return nil, fmt.Errorf("%w %s: part %d of %d is missing (no %s: its dump has not finished, or failed; run it again with --part %d/%d)", ErrSet, dir, i, n, EntryName(i, n), i, n)
		}
		size, ok := sizes[e.File]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w %s: part %d of %d: its file %s is not there", ErrSet, dir, i, n, e.File)
		case size != e.Bytes:
			return nil, fmt.Errorf("%w %s: part %d of %d: %s holds %d bytes where its entry says %d: the file is cut short or changed", ErrSet, dir, i, n, e.File, size, e.Bytes)
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].Part < entries[b].Part })
	return entries, nil
}
