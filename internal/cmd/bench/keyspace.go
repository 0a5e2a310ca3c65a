package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"

	"github.com/crs-tool/crs/format"
	"github.com/crs-tool/crs/internal/keyspace"
	"github.com/crs-tool/crs/internal/redisserver"
)

func keyspaceBench(ctx context.Context, bin string, scale float64, keep string, rounds int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	src, err := redisserver.Start(ctx, "--repl-diskless-sync-delay", "0")
	if err != nil {
		return err
	}
	defer src.Close()
	sc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, ReadTimeout: time.Minute})
	defer sc.Close()
	start := time.Now()
	if _, err := keyspace.Fill(ctx, sc, max(int(450_000*scale), 1)); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	// The guide's rate-limit windows expire after a minute; moved three
	// hours ahead, every round moves the same keys.
	if err := keyspace.Stretch(ctx, sc, 3*time.Hour); err != nil {
		return err
	}
	keys, _ := sc.DBSize(ctx).Result()
	fmt.Printf("keyspace: %d keys shaped like the migration guide's, filled in %.1fs; %d rounds, each tool's best round counts\n", keys, time.Since(start).Seconds(), rounds)

	dir, err := os.MkdirTemp("", "crs-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "keyspace.jsonl.zst")
	if keep != "" {
		file = keep + ".keyspace"
	}
	rdb := filepath.Join(dir, "dump.rdb")
	resp := filepath.Join(dir, "keyspace.resp")

	// Each write goes into an empty server of its own.
	loadInto := func(script func(url, port string) string) (measured, int64, error) {
		dst, err := redisserver.Start(ctx)
		if err != nil {
			return measured{}, 0, err
		}
		defer dst.Close()
		dc := redis.NewClient(&redis.Options{Addr: dst.Addr})
		defer dc.Close()
		before := serverCPU(ctx, dc)
		m, err := run(ctx, bin, script(dst.URL, port(dst.Addr)))
		if err != nil {
			return m, 0, err
		}
		m.busy = (serverCPU(ctx, dc) - before) / m.wall.Seconds()
		n, err := dc.DBSize(ctx).Result()
		return m, n, err
	}
	best := func(a, b measured) measured {
		if b.wall == 0 || (a.wall != 0 && a.wall < b.wall) {
			a.maxRSS = max(a.maxRSS, b.maxRSS)
			return a
		}
		b.maxRSS = max(a.maxRSS, b.maxRSS)
		return b
	}
	// The same keys on a cluster of 3 masters, loaded once (untimed) from
	// the first round's dump: its dump and a load into a fresh cluster are
	// timed against the standalone ones.
	var srcCluster *redisserver.Cluster
	defer func() {
		if srcCluster != nil {
			srcCluster.Close()
		}
	}()
	clusterFile := filepath.Join(dir, "cluster.jsonl.zst")
	var cd, cl measured
	var clusterRatios []string
	var d, r, l, p, sn, conv, lr measured
	var lkeys, pkeys int64
	var serverLoad time.Duration
	var dumpRatios, loadRatios, snapRatios, convRatios, rdbLoadRatios []string
	snap := filepath.Join(dir, "snapshot.jsonl.zst")
	converted := filepath.Join(dir, "converted.jsonl.zst")
	for round := 0; round < rounds; round++ {
		// The two reads, one after the other on the same idle server, then
		// the two writes; the same order each round.
		before := serverCPU(ctx, sc)
		rd, err := run(ctx, bin, fmt.Sprintf("crsdump -q -u %s -o %s", src.URL, file))
		if err != nil {
			return err
		}
		rd.busy = (serverCPU(ctx, sc) - before) / rd.wall.Seconds()
		rr, err := run(ctx, bin, fmt.Sprintf("redis-cli -h 127.0.0.1 -p %s --rdb %s", port(src.Addr), rdb))
		if err != nil {
			return err
		}
		// The consistent snapshot against redis-cli --rdb (both through
		// the replication protocol); the RDB file converted against the
		// time redis-server takes to load the same file.
		rs, err := run(ctx, bin, fmt.Sprintf("crsdump -q --snapshot -u %s -o %s", src.URL, snap))
		if err != nil {
			return err
		}
		rc, err := run(ctx, bin, fmt.Sprintf("crsdump -q --rdb %s -o %s", rdb, converted))
		if err != nil {
			return err
		}
		loaded, err := serverLoadTime(ctx, rdb)
		if err != nil {
			return err
		}
		serverLoad = min(serverLoad, loaded)
		if round == 0 {
			serverLoad = loaded
		}
		snapRatios = append(snapRatios, fmt.Sprintf("%.2f", rs.wall.Seconds()/rr.wall.Seconds()))
		convRatios = append(convRatios, fmt.Sprintf("%.2f", rc.wall.Seconds()/loaded.Seconds()))
		sn, conv = best(sn, rs), best(conv, rc)
		if round == 0 {
			if err := writeRESP(file, resp); err != nil {
				return err
			}
		}
		rl, n, err := loadInto(func(url, _ string) string { return fmt.Sprintf("crsload -q -u %s %s", url, file) })
		if err != nil {
			return err
		}
		lkeys = n
		rp, n, err := loadInto(func(_, port string) string {
			return fmt.Sprintf("redis-cli -h 127.0.0.1 -p %s --pipe < %s", port, resp)
		})
		if err != nil {
			return err
		}
		pkeys = n
		// The RDB file straight into a server, against the dump file of
		// the same keys.
		rlr, n, err := loadInto(func(url, _ string) string { return fmt.Sprintf("crsload -q -u %s %s", url, rdb) })
		if err != nil {
			return err
		}
		if n < lkeys*9/10 {
			// Keys with short expiries may lapse between the two loads;
			// a tenth fewer is a failure.
			return fmt.Errorf("keys loaded from the RDB file: %d, from the dump %d", n, lkeys)
		}
		rdbLoadRatios = append(rdbLoadRatios, fmt.Sprintf("%.2f", rlr.wall.Seconds()/rl.wall.Seconds()))
		lr = best(lr, rlr)
		if srcCluster == nil {
			if srcCluster, err = redisserver.StartCluster(ctx, 3, 0, ""); err != nil {
				return err
			}
			if _, err := run(ctx, bin, fmt.Sprintf("crsload -q -u %s %s", srcCluster.URL(), file)); err != nil {
				return err
			}
		}
		rcd, err := run(ctx, bin, fmt.Sprintf("crsdump -q -u %s -o %s", srcCluster.URL(), clusterFile))
		if err != nil {
			return err
		}
		dstCluster, err := redisserver.StartCluster(ctx, 3, 0, "")
		if err != nil {
			return err
		}
		rcl, err := run(ctx, bin, fmt.Sprintf("crsload -q -u %s %s", dstCluster.URL(), file))
		dstCluster.Close()
		if err != nil {
			return err
		}
		clusterRatios = append(clusterRatios, fmt.Sprintf("%.2f/%.2f", rcd.wall.Seconds()/rd.wall.Seconds(), rcl.wall.Seconds()/rl.wall.Seconds()))
		cd, cl = best(cd, rcd), best(cl, rcl)
		dumpRatios = append(dumpRatios, fmt.Sprintf("%.2f", rd.wall.Seconds()/rr.wall.Seconds()))
		loadRatios = append(loadRatios, fmt.Sprintf("%.2f", rl.wall.Seconds()/rp.wall.Seconds()))
		d, r, l, p = best(d, rd), best(r, rr), best(l, rl), best(p, rp)
	}

	// A dump held to half its own best rate, and a load to half its own,
	// by --rate: how close each keeps to the rate asked.
	dumpRate := float64(keys) / d.wall.Seconds() / 2
	rd, err := run(ctx, bin, fmt.Sprintf("crsdump -q --rate %.0f -u %s -o %s", dumpRate, src.URL, file))
	if err != nil {
		return err
	}
	// Commands a second: half the unlimited load's keys a second (a key
	// here takes one command, two with an expiry, so at least half).
	loadRate := float64(lkeys) / l.wall.Seconds() / 2
	rl, _, err := loadInto(func(url, _ string) string { return fmt.Sprintf("crsload -q --rate %.0f -u %s %s", loadRate, url, file) })
	if err != nil {
		return err
	}

	// A load unlimited and one under --max-server-cpu 50: the target's
	// CPU use over each run (INFO cpu before and after).
	cpuOf := func(flags string) (float64, measured, error) {
		dst, err := redisserver.Start(ctx)
		if err != nil {
			return 0, measured{}, err
		}
		defer dst.Close()
		dc := redis.NewClient(&redis.Options{Addr: dst.Addr, Protocol: 2})
		defer dc.Close()
		before := serverCPU(ctx, dc)
		m, err := run(ctx, bin, fmt.Sprintf("crsload %s -u %s %s", flags, dst.URL, file))
		return 100 * (serverCPU(ctx, dc) - before) / m.wall.Seconds(), m, err
	}
	freeCPU, _, err := cpuOf("-q")
	if err != nil {
		return err
	}
	heldCPU, hm, err := cpuOf("--max-server-cpu 50")
	if err != nil {
		return err
	}

	size := func(f string) int64 { fi, _ := os.Stat(f); return fi.Size() }
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tkeys\tbest wall\tkeys/s\toutput MiB/s\tpeak RSS\tfile\t")
	row := func(name string, n int64, m measured, file string) {
		out, rate := "", ""
		if file != "" {
			out = fmt.Sprintf("%.1f MiB", mib(size(file)))
			rate = fmt.Sprintf("%.1f", mib(size(file))/m.wall.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2fs\t%.0f\t%s\t%.1f MiB\t%s\t\n", name, n, m.wall.Seconds(), float64(n)/m.wall.Seconds(), rate, mib(m.maxRSS), out)
	}
	row("crsdump", keys, d, file)
	row("crsdump --snapshot", keys, sn, snap)
	row("redis-cli --rdb", keys, r, rdb)
	row("crsdump --rdb FILE", keys, conv, converted)
	row("redis-server loading it", keys, measured{wall: serverLoad}, "")
	row("crsdump of a 3-master cluster", keys, cd, clusterFile)
	row("crsload", lkeys, l, "")
	row("crsload FILE.rdb", lkeys, lr, "")
	row("crsload into a 3-master cluster", keys, cl, "")
	row("redis-cli --pipe", pkeys, p, "")
	tw.Flush()

	dumpRatio := d.wall.Seconds() / r.wall.Seconds()
	loadRatio := l.wall.Seconds() / p.wall.Seconds()
	sizeRatio := float64(size(file)) / float64(size(rdb))
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	fmt.Printf("crsdump / rdb snapshot:     %.2f best against best (target <= 2.0: %s); round by round %s\n", dumpRatio, verdict(dumpRatio <= 2), strings.Join(dumpRatios, " "))
	fmt.Printf("crsload / redis-cli --pipe: %.2f best against best (target <= 1.0: %s); round by round %s\n", loadRatio, verdict(loadRatio <= 1), strings.Join(loadRatios, " "))
	fmt.Printf("dump file / rdb file:       %.2f (target <= 0.5: %s)\n", sizeRatio, verdict(sizeRatio <= 0.5))
	snapRatio := sn.wall.Seconds() / r.wall.Seconds()
	convRatio := conv.wall.Seconds() / serverLoad.Seconds()
	fmt.Printf("crsdump --snapshot / redis-cli --rdb: %.2f best against best (target <= 1.3: %s); round by round %s; peak RSS %.1f MiB (target < 64: %s)\n", snapRatio, verdict(snapRatio <= 1.3), strings.Join(snapRatios, " "), mib(sn.maxRSS), verdict(sn.maxRSS < rssLimit))
	fmt.Printf("cluster / standalone, dump and load: %.2f and %.2f best against best (target <= 1.0: %s); round by round %s\n", cd.wall.Seconds()/d.wall.Seconds(), cl.wall.Seconds()/l.wall.Seconds(), verdict(cd.wall <= d.wall && cl.wall <= l.wall), strings.Join(clusterRatios, " "))
	fmt.Printf("crsdump --rdb FILE / redis-server loading it: %.2f best against best (target <= 1.0: %s); round by round %s; peak RSS %.1f MiB\n", convRatio, verdict(convRatio <= 1.0), strings.Join(convRatios, " "), mib(conv.maxRSS))
	rdbLoadRatio := lr.wall.Seconds() / l.wall.Seconds()
	fmt.Printf("crsload FILE.rdb / crsload of the dump file: %.2f best against best (target <= 1.0: %s); round by round %s; peak RSS %.1f MiB\n", rdbLoadRatio, verdict(rdbLoadRatio <= 1.0), strings.Join(rdbLoadRatios, " "), mib(lr.maxRSS))
	// Where the server works the whole run, the tool waits on it: the
	// ratio is then the server's work per key, not the tool's.
	fmt.Printf("the server's CPU over each best round's wall time (100%%: a core the whole run): crsdump (SCAN) %.0f%%, crsload %.0f%%, crsload FILE.rdb %.0f%%, redis-cli --pipe %.0f%%\n", 100*d.busy, 100*l.busy, 100*lr.busy, 100*p.busy)
	fmt.Printf("peak RSS crsdump %.1f MiB, crsload %.1f MiB, the highest of all rounds (target < 64: %s)\n", mib(d.maxRSS), mib(l.maxRSS), verdict(d.maxRSS < rssLimit && l.maxRSS < rssLimit))
	got := float64(keys) / rd.wall.Seconds()
	fmt.Printf("crsdump --rate %.0f: %.0f keys/s, %.3f of the rate (target within 10%%: %s)\n", dumpRate, got, got/dumpRate, verdict(got >= dumpRate*0.9 && got <= dumpRate*1.1))
	fmt.Printf("crsload --rate %.0f (commands a second): %.2fs against %.2fs unlimited (at least twice as long expected)\n", loadRate, rl.wall.Seconds(), l.wall.Seconds())
	fmt.Printf("crsload --max-server-cpu 50: the target used %.0f%% of a core over the load (unlimited: %.0f%%), in %.2fs (target at most 55%%: %s)%s\n", heldCPU, freeCPU, hm.wall.Seconds(), verdict(heldCPU <= 55), lineOf(hm.out, "held back"))
	if lkeys != keys || pkeys != keys {
		return fmt.Errorf("keys loaded: crsload %d, redis-cli --pipe %d, source %d", lkeys, pkeys, keys)
	}
	return nil
}

func port(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}

// writeRESP turns the keys of a crs dump into the commands a
// mass-insertion guide would send: one command per key (HSET with all
// fields, SET with PXAT), plus PEXPIREAT for a hash with an expiry.
func writeRESP(dumpFile, respFile string) error {
	in, err := os.Open(dumpFile)
	if err != nil {
		return err
	}
	defer in.Close()
	dec, err := zstd.NewReader(bufio.NewReader(in))
	if err != nil {
		return err
	}
	defer dec.Close()
	out, err := os.Create(respFile)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	cmd := func(args ...string) {
		w.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
		for _, a := range args {
			w.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
		}
	}
	fr := format.NewReader(dec)
	for {
		rec, err := fr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		exp := strconv.FormatInt(rec.ExpireAtMs, 10)
		switch rec.Type {
		case format.TypeString:
			if rec.ExpireAtMs > 0 {
				cmd("SET", rec.Key, rec.Str, "PXAT", exp)
			} else {
				cmd("SET", rec.Key, rec.Str)
			}
		case format.TypeHash:
			args := []string{"HSET", rec.Key}
			for _, f := range rec.Hash {
				args = append(args, f.Name, f.Value)
			}
			cmd(args...)
			if rec.ExpireAtMs > 0 {
				cmd("PEXPIREAT", rec.Key, exp)
			}
		default:
			return fmt.Errorf("keyspace bench: unexpected type %s", rec.Type)
		}
	}
	return w.Flush()
}

// serverLoadTime starts a redis-server on a copy of the RDB file and
// returns the time it says it took to load it ("DB loaded from disk").
func serverLoadTime(ctx context.Context, rdbFile string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "crs-bench-load-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(rdbFile)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "dump.rdb"), b, 0o600); err != nil {
		return 0, err
	}
	s, err := redisserver.Start(ctx, "--dir", dir, "--dbfilename", "dump.rdb")
	if err != nil {
		return 0, err
	}
	defer s.Close()
	log := s.Log()
	i := strings.Index(log, "DB loaded from disk: ")
	if i < 0 {
		return 0, fmt.Errorf("redis-server did not say how long it took to load the file:\n%s", log)
	}
	var secs float64
	if _, err := fmt.Sscanf(log[i+len("DB loaded from disk: "):], "%f", &secs); err != nil {
		return 0, err
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// serverCPU is the CPU time a server has used, in seconds.
func serverCPU(ctx context.Context, c *redis.Client) float64 {
	info, _ := c.Info(ctx, "cpu").Result()
	sys, _ := strconv.ParseFloat(infoField(info, "used_cpu_sys"), 64)
	user, _ := strconv.ParseFloat(infoField(info, "used_cpu_user"), 64)
	return sys + user
}

// lineOf returns "; " and the clause of out's summary that holds s.
func lineOf(out, s string) string {
	for _, part := range strings.Split(out, "; ") {
		if strings.Contains(part, s) {
			return "; " + strings.TrimSpace(part)
		}
	}
	return ""
}
