package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/crs-tool/crs/internal/metrics"
	"github.com/crs-tool/crs/internal/progress"
)

// metricsFlags is --metrics-addr (and, for sync, --healthz-max-lag).
type metricsFlags struct {
	addr   string
	maxLag time.Duration
}

func (m *metricsFlags) flags(sync bool) []cli.Flag {
	fs := []cli.Flag{&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://`HOST:PORT`/metrics, the progress as JSON at /status and a health check at /healthz while running (README: Metrics)", Destination: &m.addr}}
	if sync {
		m.maxLag = time.Minute
		fs = append(fs, &cli.DurationFlag{Name: "healthz-max-lag", Value: m.maxLag, Usage: "/healthz fails (503) once a streaming sync lags more than this behind its source (0: never for the lag)", Destination: &m.maxLag})
	}
	return fs
}

// start serves e at --metrics-addr, if given, until the returned stop.
func (m *metricsFlags) start(ctx context.Context, tool string, e metrics.Endpoint) (stop func(), err error) {
	if m.addr == "" {
		return func() {}, nil
	}
	srv, err := metrics.Start(ctx, m.addr, e)
	if err != nil {
		return nil, usageError{err}
	}
	fmt.Fprintf(stderr, "%s: metrics at http://%s/metrics (status /status, health /healthz)\n", tool, srv.Addr())
	return func() { srv.Close() }, nil
}

// watch serves e at --metrics-addr and opens --summary-json's file, where
// given, until stop.
func (m *metricsFlags) watch(ctx context.Context, tool string, e metrics.Endpoint, s *summaryFlag) (summary io.Writer, stop func(), err error) {
	stopMetrics, err := m.start(ctx, tool, e)
	if err != nil {
		return nil, nil, err
	}
	if summary, err = s.open(); err != nil {
		stopMetrics()
		return nil, nil, err
	}
	return summary, func() { s.close(); stopMetrics() }, nil
}

// counterEndpoint is the endpoint of a load or a dump: the keys done of
// those expected.
func counterEndpoint(command string, c *progress.Counter) metrics.Endpoint {
	return metrics.Endpoint{
		Collectors: []metrics.Collector{metrics.Progress(command, c.Done, c.Total)},
		Status: func() any {
			return struct {
				Keys     int64 `json:"keys_done"`
				Expected int64 `json:"keys_expected"`
			}{c.Done(), c.Total()}
		},
	}
}

// summaryFlag is --summary-json FILE: the command's summary as one JSON
// object, written to FILE at the end, for a pipeline to assert on.
type summaryFlag struct {
	path string
	f    *os.File
}

func (s *summaryFlag) flag() cli.Flag {
	return &cli.StringFlag{Name: "summary-json", Usage: "write the summary as one JSON object to `FILE` at the end (as --json prints it), whatever is printed", Destination: &s.path}
}

// open creates the file, if one is named; nil otherwise.
func (s *summaryFlag) open() (io.Writer, error) {
	if s.path == "" {
		return nil, nil
	}
	f, err := os.Create(s.path)
	if err != nil {
		return nil, usageError{fmt.Errorf("--summary-json: %w", err)}
	}
	s.f = f
	return f, nil
}

func (s *summaryFlag) close() {
	if s.f != nil {
		s.f.Close()
	}
}
