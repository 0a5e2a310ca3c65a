// Package metrics serves what a running command is doing over HTTP, for
// the dashboards and probes operators already run: Prometheus metrics at
// /metrics (the command's, the Go runtime's and the process's), the
// progress as JSON at /status, and /healthz, which answers 200 while the
// command is healthy and 503 with the reason when it is not.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Collector is a source of metrics (prometheus.Collector).
type Collector = prometheus.Collector

// Endpoint is what a command serves: its collectors, its status and its
// health.
type Endpoint struct {
	// Collectors are the command's metrics.
	Collectors []Collector
	// Status returns the progress, served as JSON at /status.
	Status func() any
	// Health returns nil while the command is healthy.
	Health func() error
}

// Server serves an Endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Start listens on addr (HOST:PORT; port 0 picks a free one) and serves
// e until Close or until ctx ends.
func Start(ctx context.Context, addr string, e Endpoint) (*Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range e.Collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var v any
		if e.Status != nil {
			v = e.Status()
		}
		json.NewEncoder(w).Encode(v)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if e.Health != nil {
			if err := e.Health(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Progress is the metrics of a load or a dump: keys done of those
// expected, read at each scrape from the command's counters.
func Progress(command string, done, expected func() int64) prometheus.Collector {
	return progressCollector{
		done:     prometheus.NewDesc("crs_"+command+"_keys_total", "Keys "+map[string]string{"load": "written", "dump": "dumped"}[command]+" so far.", nil, nil),
		expected: prometheus.NewDesc("crs_"+command+"_keys_expected", "Keys expected in all, as the source said at the start (0: unknown).", nil, nil),
		read:     [2]func() int64{done, expected},
	}
}

type progressCollector struct {
	done, expected *prometheus.Desc
	read           [2]func() int64
}

func (p progressCollector) Describe(ch chan<- *prometheus.Desc) { ch <- p.done; ch <- p.expected }
func (p progressCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(p.done, prometheus.CounterValue, float64(p.read[0]()))
	ch <- prometheus.MustNewConstMetric(p.expected, prometheus.GaugeValue, float64(p.read[1]()))
}
