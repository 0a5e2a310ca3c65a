// Package report prints the tools' summaries: a line for a person, or one
// JSON object for a script.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// JSON writes one line holding a JSON object: "time" (RFC 3339 in ms),
// "tool", "ok", "error" (on failure), then the fields of v, a struct, in
// its order.
func JSON(w io.Writer, tool string, v any, err error) {
	head := struct {
		Time  string `json:"time"`
		Tool  string `json:"tool"`
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}{Time: time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), Tool: tool, OK: err == nil}
	if err != nil {
		head.Error = err.Error()
	}
	h, _ := json.Marshal(head)
	b, _ := json.Marshal(v)
	if len(b) > 2 && b[0] == '{' {
		h = append(append(h[:len(h)-1], ','), b[1:]...)
	}
	fmt.Fprintf(w, "%s\n", h)
}

// TypeCounts formats keys per type as " (hash 3, string 2)", or "" when
// there are none.
func TypeCounts(byType map[string]int64) string {
	if len(byType) == 0 {
		return ""
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	var b strings.Builder
	b.WriteString(" (")
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", t, byType[t])
	}
	b.WriteString(")")
	return b.String()
}

// Bytes formats a byte count for a person: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// KeysOnDisk is the summaries' phrase for the keys a tool checked for
// repeats on disk, past its memory limit (internal/keyset), and the
// bytes of temporary files they took; "" when there were none.
func KeysOnDisk(keys, bytes int64) string {
	if keys == 0 {
		return ""
	}
	return fmt.Sprintf("; %d keys past the memory limit checked for repeats on disk (%s of temporary files)", keys, Bytes(bytes))
}

// HeldBack says, as a summary's clause, how long --max-server-cpu held a
// tool back ("" when it was not given).
func HeldBack(heldMs int64, peakPct float64) string {
	if peakPct == 0 && heldMs == 0 {
		return ""
	}
	return fmt.Sprintf("; held back %.1fs while the server's CPU was over --max-server-cpu (its peak: %.0f%% of a core)", float64(heldMs)/1000, peakPct)
}
