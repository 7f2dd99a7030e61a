package main

// Stream load: n subscribers, a connection each, reading as fast as they can.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// subscriber is what one stream saw; only messages received inside the window count.
type subscriber struct {
	Messages int    `json:"messages"`
	Ticks    int    `json:"ticks"`
	Offered  uint64 `json:"offered"`
	LostGaps uint64 `json:"lost_gaps"`
	Dropped  uint64 `json:"dropped"`
	latency  []int64
	err      error
}

// streamBench opens n streams of `method` ("ticks": StreamTicks of one instance, checked for
// gaps; otherwise a raw method sending StreamTicksResponse messages, such as the benchmark's
// bare ceiling), waits `warmup`, then records `seconds`. Every message is decoded the same way
// whichever server sent it, so that the client costs the same per message against the ceiling
// as against the server measured (on a small machine both share the CPU). Without `latency`
// the ticks are counted, not read one by one, and no receive-to-client latency is kept (a
// capacity run: the client's own work per tick would be measured with the server's).
func streamBench(address, method, instance string, n int, seconds, warmup float64, latency bool) (map[string]any, error) {
	ticks := method == "ticks"
	path, request := method, []byte{}
	if ticks {
		path, request = "/mt5exec.v1.StreamService/StreamTicks", ticksRequest(instance)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams := make([]grpc.ClientStream, n)
	for i := range streams {
		conn, err := grpc.NewClient(address, dialOptions()...)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, path, raw)
		if err != nil {
			return nil, err
		}
		if err := s.SendMsg(&request); err != nil {
			return nil, err
		}
		if err := s.CloseSend(); err != nil {
			return nil, err
		}
		if _, err := s.Header(); err != nil { // headers: the subscription is live
			return nil, fmt.Errorf("stream %d: %w", i, err)
		}
		streams[i] = s
	}
	var window struct {
		sync.RWMutex
		start, end int64
	}
	window.start, window.end = 1<<62, 1<<62
	subs := make([]subscriber, n)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func(s grpc.ClientStream, out *subscriber) {
			defer wg.Done()
			var msg []byte
			var batch tickBatch
			expected, first := uint64(0), uint64(0)
			for {
				if err := s.RecvMsg(&msg); err != nil {
					if ctx.Err() == nil {
						out.err = err
					}
					return
				}
				now := time.Now().UnixNano()
				window.RLock()
				inside := now >= window.start && now < window.end
				over := now >= window.end
				window.RUnlock()
				if over {
					return
				}
				decodeTicks(msg, &batch, latency)
				k := batch.count
				if !ticks {
					if inside {
						out.Messages++
						out.Ticks += int(k)
					}
					continue
				}
				if inside && expected != 0 && batch.sequence > expected {
					out.LostGaps += batch.sequence - expected
				}
				expected = batch.sequence + k
				if inside {
					out.Dropped = max(out.Dropped, batch.dropped)
					if out.Messages == 0 {
						first = batch.sequence
					}
					out.Offered = batch.sequence + k - first
					out.Messages++
					out.Ticks += int(k)
					if latency {
						for _, r := range batch.receivedNanos {
							out.latency = append(out.latency, now-r)
						}
					}
				}
			}
		}(streams[i], &subs[i])
	}
	time.Sleep(time.Duration(warmup * float64(time.Second)))
	window.Lock()
	window.start = time.Now().UnixNano()
	window.end = window.start + int64(seconds*1e9)
	window.Unlock()
	cpu0 := cpuSeconds()
	time.Sleep(time.Duration(seconds * float64(time.Second)))
	cpu := cpuSeconds() - cpu0
	cancel()
	wg.Wait()
	var all []int64
	messages := 0
	for i := range subs {
		if subs[i].err != nil {
			return nil, fmt.Errorf("stream %d: %w", i, subs[i].err)
		}
		messages += subs[i].Messages
		all = append(all, subs[i].latency...)
	}
	out := map[string]any{
		"subscribers":        n,
		"window_s":           seconds,
		"messages_per_s":     float64(messages) / seconds,
		"client_cpu_percent": cpu / seconds * 100,
		"subs":               subs,
	}
	if ticks && latency {
		out["latency"] = summaryMillis(all)
	}
	return out, nil
}
