package main

// Order load: unary throughput, sequential round trips, one order session.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

const (
	healthCheck = "/grpc.health.v1.Health/Check"
	placeMethod = "/mt5exec.v1.OrderService/PlaceOrder"
	cancelRPC   = "/mt5exec.v1.OrderService/CancelOrder"
	sessionRPC  = "/mt5exec.v1.OrderService/OrderSession"
)

var raw = grpc.ForceCodec(rawCodec{})

type orderTarget struct {
	instance, symbol string
	volume           float64
}

// market is a market order that alternates sides, so a netting position stays small.
func (t orderTarget) market(cid string, n int) placeOrder {
	side := uint64(sideBuy)
	if n%2 == 1 {
		side = sideSell
	}
	return placeOrder{instanceID: t.instance, clientOrderID: cid, symbol: t.symbol,
		side: side, orderType: orderTypeMarket, volume: t.volume}
}

func invoke(ctx context.Context, conn *grpc.ClientConn, method string, req []byte) ([]byte, error) {
	var reply []byte
	err := conn.Invoke(ctx, method, &req, &reply, raw)
	return reply, err
}

// unaryRate runs `concurrency` loops of one call each after the other for `seconds`; calls/s.
func unaryRate(conn *grpc.ClientConn, concurrency int, seconds float64, call func(worker, n int) error) (float64, int64, error) {
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	stop := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	started := time.Now()
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				if err := call(w, n); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	return float64(done.Load()) / elapsed, done.Load(), firstErr
}

// unaryRounds: how many times the unary bench alternates null RPCs and orders.
const unaryRounds = 5

// unaryBench: null RPC (health Check) and PlaceOrder at the same concurrency, in alternating
// rounds.
func unaryBench(conn *grpc.ClientConn, t orderTarget, concurrency int, seconds, warmup float64, prefix string) (map[string]any, error) {
	ctx := context.Background()
	empty := []byte{}
	null := func(int, int) error { _, err := invoke(ctx, conn, healthCheck, empty); return err }
	var filled atomic.Int64
	var round atomic.Int64 // ids of the warm-up and of the run must differ
	place := func(w, n int) error {
		o := t.market(fmt.Sprintf("%s%d-%d-%d", prefix, round.Load(), w, n), n)
		reply, err := invoke(ctx, conn, placeMethod, o.encode())
		if err == nil && decodeOrderReply(reply).status == statusFilled {
			filled.Add(1)
		}
		return err
	}
	if _, _, err := unaryRate(conn, concurrency, warmup, null); err != nil {
		return nil, fmt.Errorf("null RPC: %w", err)
	}
	if _, _, err := unaryRate(conn, concurrency, warmup, place); err != nil {
		return nil, fmt.Errorf("PlaceOrder: %w", err)
	}
	filled.Store(0)
	round.Add(1)
	// Alternating rounds of each, so that a drift of the machine's speed (other tenants, CPU
	// frequency) hits both kinds alike; the ratio is the median of the rounds' ratios.
	slice := seconds / unaryRounds
	var nullCalls, orders int64
	var nullTime, orderTime, cpu float64
	ratios := make([]float64, 0, unaryRounds)
	rounds := make([]map[string]float64, 0, unaryRounds)
	for r := 0; r < unaryRounds; r++ {
		nullRate, n, err := unaryRate(conn, concurrency, slice, null)
		if err != nil {
			return nil, fmt.Errorf("null RPC: %w", err)
		}
		cpu0 := cpuSeconds()
		orderRate, o, err := unaryRate(conn, concurrency, slice, place)
		if err != nil {
			return nil, fmt.Errorf("PlaceOrder: %w", err)
		}
		cpu += cpuSeconds() - cpu0
		nullCalls, orders = nullCalls+n, orders+o
		nullTime += float64(n) / nullRate
		orderTime += float64(o) / orderRate
		ratios = append(ratios, orderRate/nullRate)
		rounds = append(rounds, map[string]float64{"null_rpc_per_s": nullRate, "place_order_per_s": orderRate})
	}
	slices.Sort(ratios)
	return map[string]any{
		"concurrency":             concurrency,
		"rounds":                  rounds,
		"null_rpc_per_s":          float64(nullCalls) / nullTime,
		"place_order_per_s":       float64(orders) / orderTime,
		"round_ratios":            ratios, // sorted
		"median_ratio":            ratios[len(ratios)/2],
		"orders":                  orders,
		"filled":                  filled.Load(),
		"client_cpu_us_per_order": cpu / float64(orders) * 1e6,
	}, nil
}

// latencyBench: one call at a time, interleaved so that machine noise hits each kind alike:
// null RPC, market order, pending order (a buy limit under the market; cancelled, untimed).
func latencyBench(conn *grpc.ClientConn, t orderTarget, orders, warmup int, prefix string) (map[string]any, error) {
	ctx := context.Background()
	empty := []byte{}
	var null, market, pending []time.Duration
	for i := 0; i < warmup+orders; i++ {
		t0 := time.Now()
		if _, err := invoke(ctx, conn, healthCheck, empty); err != nil {
			return nil, fmt.Errorf("null RPC: %w", err)
		}
		t1 := time.Now()
		reply, err := invoke(ctx, conn, placeMethod, t.market(fmt.Sprintf("%sm%d", prefix, i), i).encode())
		if err != nil {
			return nil, fmt.Errorf("PlaceOrder market: %w", err)
		}
		t2 := time.Now()
		filled := decodeOrderReply(reply)
		if filled.status != statusFilled {
			return nil, fmt.Errorf("market order %d: status %d, want FILLED", i, filled.status)
		}
		limit := placeOrder{instanceID: t.instance, clientOrderID: fmt.Sprintf("%sp%d", prefix, i),
			symbol: t.symbol, side: sideBuy, orderType: orderTypeLimit, volume: t.volume,
			price: roundTo(filled.averageFillPrice-0.002, 5)}
		t3 := time.Now()
		reply, err = invoke(ctx, conn, placeMethod, limit.encode())
		if err != nil {
			return nil, fmt.Errorf("PlaceOrder limit: %w", err)
		}
		t4 := time.Now()
		placed := decodeOrderReply(reply)
		if placed.status != statusAccepted {
			return nil, fmt.Errorf("limit order %d: status %d, want ACCEPTED", i, placed.status)
		}
		if _, err := invoke(ctx, conn, cancelRPC, cancelOrder(t.instance, placed.orderID)); err != nil {
			return nil, fmt.Errorf("CancelOrder: %w", err)
		}
		if i >= warmup {
			null = append(null, t1.Sub(t0))
			market = append(market, t2.Sub(t1))
			pending = append(pending, t4.Sub(t3))
		}
	}
	return map[string]any{
		"null_rpc":      summaryMicros(null),
		"place_order":   summaryMicros(market),
		"pending_order": summaryMicros(pending),
	}, nil
}

// sessionBench: `orders` market orders through one OrderSession, `batch` per request message,
// sent as fast as flow control lets them go while the results are read; orders/s from the
// first send to the last result.
// sessionBench sends `orders` market orders through one OrderSession, `batch` per request
// message, as fast as the session takes them or paced at `rate` orders/s. Paced, it also
// times each request message from its send to its last answer (answers of one instance come
// in the order sent): below the session's capacity that is the order path's own latency,
// stalls included, rather than time spent queued behind earlier orders.
func sessionBench(conn *grpc.ClientConn, t orderTarget, orders, batch int, rate float64, prefix string) (map[string]any, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	stream, err := conn.NewStream(ctx, desc, sessionRPC, raw)
	if err != nil {
		return nil, err
	}
	batch = max(batch, 1)
	places := make([][]byte, orders)
	for i := range places {
		places[i] = sessionPlace(t.market(fmt.Sprintf("%s%d", prefix, i), i))
	}
	requests := places
	if batch > 1 {
		requests = nil
		for i := 0; i < orders; i += batch {
			requests = append(requests, sessionBatch(places[i:min(i+batch, orders)]))
		}
	}
	cpu0 := cpuSeconds()
	started := time.Now()
	sentAt := make([]atomic.Int64, len(requests))
	sendErr := make(chan error, 1)
	go func() {
		for i := range requests {
			if rate > 0 {
				due := started.Add(time.Duration(float64(i*batch) / rate * float64(time.Second)))
				time.Sleep(time.Until(due))
			}
			sentAt[i].Store(time.Now().UnixNano())
			if err := stream.SendMsg(&requests[i]); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	ok, filled, answered, messages := 0, 0, 0, 0
	var answerTimes []int64
	var reply []byte
	for answered < orders {
		if err := stream.RecvMsg(&reply); err != nil {
			return nil, fmt.Errorf("after %d results: %w", answered, err)
		}
		messages++
		now := time.Now().UnixNano()
		sessionAnswers(reply, func(answer []byte) {
			answered++
			if rate > 0 && (answered%batch == 0 || answered == orders) {
				answerTimes = append(answerTimes, now-sentAt[(answered-1)/batch].Load())
			}
			code, o := decodeSessionReply(answer)
			if code == 0 {
				ok++
			}
			if o.status == statusFilled {
				filled++
			}
		})
	}
	elapsed := time.Since(started).Seconds()
	if err := <-sendErr; err != nil {
		return nil, err
	}
	result := map[string]any{
		"orders":                  orders,
		"batch":                   batch,
		"ok":                      ok,
		"filled":                  filled,
		"response_messages":       messages,
		"seconds":                 elapsed,
		"orders_per_s":            float64(orders) / elapsed,
		"client_cpu_us_per_order": (cpuSeconds() - cpu0) / float64(orders) * 1e6,
	}
	if rate > 0 {
		result["rate"] = rate
		result["answer_ms"] = summaryMillis(answerTimes)
	}
	return result, nil
}
