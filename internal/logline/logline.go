// Package logline turns the lines the tools write to standard error into
// a log: each line is stamped with the time (RFC 3339, milliseconds, UTC)
// as plain text, or becomes one JSON object (log/slog's JSON handler) with
// the fields time, level, tool and msg. A line that is already a JSON
// object (a --json summary or progress line) keeps its fields, after
// time and level.
package logline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Formats of a log.
const (
	Text = "text"
	JSON = "json"
)

// TimeFormat is the time of every line: RFC 3339 with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Writer writes each whole line written to it as a line of the log; a
// line without its newline waits for it (or for Flush).
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	format string
	tool   string
	buf    []byte
	now    func() time.Time
	log    *slog.Logger
}

// New returns a Writer to out in format (Text or JSON) for the tool named
// tool.
func New(out io.Writer, format, tool string) *Writer {
	w := &Writer{out: out, format: format, tool: tool, now: time.Now}
	if format == JSON {
		w.log = slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
				return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(TimeFormat))
			}
			return a
		}}))
	}
	return w
}

// Write logs every whole line of p.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if err := w.line(line); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush logs a last line that has no newline.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	line := string(w.buf)
	w.buf = nil
	return w.line(line)
}

// Log logs line at level, after what is pending.
func (w *Writer) Log(level slog.Level, line string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		pending := string(w.buf)
		w.buf = nil
		if err := w.write(pending, Level(pending)); err != nil {
			return err
		}
	}
	return w.write(line, level)
}

func (w *Writer) line(line string) error { return w.write(line, Level(line)) }

func (w *Writer) write(line string, level slog.Level) error {
	line = strings.TrimRight(line, "\r")
	now := w.now().UTC()
	isJSON := strings.HasPrefix(line, "{") && json.Valid([]byte(line))
	if w.format != JSON {
		if isJSON { // a --json line: its own "time" says when
			_, err := io.WriteString(w.out, line+"\n")
			return err
		}
		_, err := io.WriteString(w.out, now.Format(TimeFormat)+" "+line+"\n")
		return err
	}
	var fields map[string]json.RawMessage
	if isJSON && json.Unmarshal([]byte(line), &fields) == nil {
		// A JSON line keeps its fields, in its order, after the level
		// (and the time, where it has none).
		head := `{"level":` + strconv.Quote(level.String())
		if _, ok := fields["time"]; !ok {
			head = `{"time":"` + now.Format(TimeFormat) + `","level":` + strconv.Quote(level.String())
		}
		if len(fields) > 0 {
			head += ","
		}
		_, err := io.WriteString(w.out, head+line[1:]+"\n")
		return err
	}
	r := slog.NewRecord(now, level, line, 0)
	r.AddAttrs(slog.String("tool", w.tool))
	return w.log.Handler().Handle(context.Background(), r)
}

// Level is the level of a line: ERROR for a failure, WARN for what was
// left out or dropped (the summaries say it in capitals) and for a
// warning, INFO otherwise.
func Level(line string) slog.Level {
	switch {
	case strings.Contains(line, "FAILED") || strings.Contains(line, `"ok":false`):
		return slog.LevelError
	case strings.Contains(line, "warning") || strings.Contains(line, "BEWARE") || strings.Contains(line, "SKIPPED") ||
		strings.Contains(line, "DROPPED") || strings.Contains(line, "LEFT OUT"):
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
