// Command loadgen drives an mt5exec server from outside Python, for the benchmarks in
// benchmarks/: a client that costs the server's two cores little, so what is measured is the
// server. Each subcommand prints one JSON object on stdout.
//
//	loadgen unary   -addr A [-concurrency 32] [-seconds 5]   null RPC and PlaceOrder calls/s
//	loadgen latency -addr A [-orders 2000]                   round trips: null, market, pending
//	loadgen session -addr A [-orders 20000] [-batch 1]       orders/s through one OrderSession
//	                [-rate R]                                 paced at R orders/s: each batch's answer time
//	loadgen streams -addr A -method ticks|/pkg.Svc/Method -n 100 [-seconds 5] [-latency=false]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The bearer token every call carries (-token, or $MT5EXEC_TOKEN); none when empty.
var token string

// bearer sends the token as `authorization: Bearer <token>` metadata, also over plaintext
// (the server is on loopback).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// dialOptions: plaintext, with the token when there is one.
func dialOptions() []grpc.DialOption {
	options := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		options = append(options, grpc.WithPerRPCCredentials(bearer(token)))
	}
	return options
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen unary|latency|session|streams -addr host:port ...")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	addr := fs.String("addr", "", "server address (host:port)")
	instance := fs.String("instance", "bench", "instance id")
	symbol := fs.String("symbol", "EURUSD", "symbol")
	volume := fs.Float64("volume", 0.01, "order volume")
	concurrency := fs.Int("concurrency", 32, "unary: concurrent callers")
	seconds := fs.Float64("seconds", 5, "measured seconds")
	warmup := fs.Float64("warmup", 1, "unary, streams: seconds before measuring")
	orders := fs.Int("orders", 0, "latency: timed rounds (2000); session: orders (20000)")
	batch := fs.Int("batch", 1, "session: orders per request message (>1: OrderSessionBatch, answers packed)")
	rate := fs.Float64("rate", 0, "session: orders/s to send at (0: as fast as the session takes them)")
	warmupOrders := fs.Int("warmup-orders", 300, "latency: untimed rounds first")
	prefix := fs.String("prefix", fmt.Sprintf("g%d-", time.Now().UnixNano()%1_000_000), "client_order_id prefix")
	method := fs.String("method", "ticks", "streams: ticks, or a full method name")
	n := fs.Int("n", 100, "streams: subscribers")
	latency := fs.Bool("latency", true, "streams: keep every tick's latency")
	fs.StringVar(&token, "token", os.Getenv("MT5EXEC_TOKEN"), "bearer token sent with every call (default $MT5EXEC_TOKEN)")
	_ = fs.Parse(os.Args[2:])
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "-addr is required")
		os.Exit(2)
	}
	target := orderTarget{instance: *instance, symbol: *symbol, volume: *volume}
	var result map[string]any
	var err error
	switch cmd {
	case "streams":
		result, err = streamBench(*addr, *method, *instance, *n, *seconds, *warmup, *latency)
	case "unary", "latency", "session":
		var conn *grpc.ClientConn
		conn, err = grpc.NewClient(*addr, dialOptions()...)
		if err != nil {
			break
		}
		defer conn.Close()
		switch cmd {
		case "unary":
			result, err = unaryBench(conn, target, *concurrency, *seconds, *warmup, *prefix)
		case "latency":
			result, err = latencyBench(conn, target, orDefault(*orders, 2000), *warmupOrders, *prefix)
		default:
			result, err = sessionBench(conn, target, orDefault(*orders, 20000), *batch, *rate, *prefix)
		}
	default:
		err = fmt.Errorf("unknown subcommand %q", cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", cmd, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func roundTo(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// cpuSeconds is the CPU time (user + system) of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(p/100*float64(len(sorted))))
	return sorted[i]
}

// summary gives n, p50/p90/p99/p99.9, max and mean of nanosecond samples in `unit` ns.
func summary(ns []int64, unit float64, suffix string) map[string]any {
	slices.Sort(ns)
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	r := func(v float64) float64 { return math.Round(v/unit*1000) / 1000 }
	out := map[string]any{"n": len(ns)}
	if len(ns) == 0 {
		return out
	}
	for _, p := range []struct {
		name string
		p    float64
	}{{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}} {
		out[p.name+suffix] = r(float64(percentile(ns, p.p)))
	}
	out["max"+suffix] = r(float64(ns[len(ns)-1]))
	out["mean"+suffix] = r(sum / float64(len(ns)))
	return out
}

func summaryMillis(ns []int64) map[string]any { return summary(ns, 1e6, "_ms") }

func summaryMicros(d []time.Duration) map[string]any {
	ns := make([]int64, len(d))
	for i, v := range d {
		ns[i] = int64(v)
	}
	return summary(ns, 1e3, "_us")
}
