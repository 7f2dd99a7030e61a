package main

// The few mt5exec messages the load generator sends and reads, encoded and decoded field by
// field with protowire: no generated code, so the tool builds from the Go module proxy alone.
// Field numbers are those of proto/mt5exec/v1/*.proto.

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec hands gRPC the bytes as they are: requests are encoded here, responses are decoded
// only as far as a figure needs.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}

// Name "proto" keeps the content type the server expects (application/grpc+proto).
func (rawCodec) Name() string { return "proto" }

const (
	sideBuy         = 1
	sideSell        = 2
	orderTypeMarket = 1
	orderTypeLimit  = 2
	statusAccepted  = 3
	statusFilled    = 5
)

type placeOrder struct {
	instanceID, clientOrderID, symbol string
	side, orderType                   uint64
	volume, price                     float64
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendDouble(b []byte, field protowire.Number, v float64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}

func appendMessage(b []byte, field protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// encode gives a PlaceOrderRequest.
func (o placeOrder) encode() []byte {
	b := make([]byte, 0, 64)
	b = appendString(b, 1, o.instanceID)
	b = appendString(b, 2, o.clientOrderID)
	b = appendString(b, 3, o.symbol)
	b = appendVarint(b, 4, o.side)
	b = appendVarint(b, 5, o.orderType)
	b = appendDouble(b, 6, o.volume)
	return appendDouble(b, 7, o.price)
}

// cancelOrder gives a CancelOrderRequest by ticket.
func cancelOrder(instanceID string, orderID uint64) []byte {
	b := appendString(nil, 1, instanceID)
	return appendVarint(b, 2, orderID)
}

// sessionPlace gives an OrderSessionRequest carrying one order.
func sessionPlace(o placeOrder) []byte { return appendMessage(nil, 1, o.encode()) }

// sessionBatch gives an OrderSessionRequest carrying `requests` (each an OrderSessionRequest)
// as an OrderSessionBatch.
func sessionBatch(requests [][]byte) []byte {
	var batch []byte
	for _, r := range requests {
		batch = appendMessage(batch, 1, r)
	}
	return appendMessage(nil, 3, batch)
}

// ticksRequest gives a StreamTicksRequest for one instance.
func ticksRequest(instanceID string) []byte { return appendString(nil, 1, instanceID) }

// fields calls fn for each top-level field of m; false from fn stops early.
func fields(m []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) bool) {
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return
		}
		m = m[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(m)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(m)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(m)
			x = uint64(y)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(m)
		default:
			n = protowire.ConsumeFieldValue(num, typ, m)
		}
		if n < 0 {
			return
		}
		m = m[n:]
		if !fn(num, typ, v, x) {
			return
		}
	}
}

// orderFigures are the fields of an Order the benchmarks look at.
type orderFigures struct {
	orderID          uint64
	status           uint64
	averageFillPrice float64
}

func decodeOrder(m []byte) orderFigures {
	var o orderFigures
	fields(m, func(num protowire.Number, _ protowire.Type, _ []byte, x uint64) bool {
		switch num {
		case 3:
			o.orderID = x
		case 17:
			o.status = x
		case 18:
			o.averageFillPrice = math.Float64frombits(x)
		}
		return true
	})
	return o
}

// decodeOrderReply reads the Order of a PlaceOrderResponse or CancelOrderResponse.
func decodeOrderReply(m []byte) orderFigures {
	var o orderFigures
	fields(m, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) bool {
		if num == 1 {
			o = decodeOrder(v)
		}
		return true
	})
	return o
}

// sessionAnswers calls fn with each answer an OrderSessionResponse carries: itself, or the
// entries of its `batch` (field 6) when the session answers packed.
func sessionAnswers(m []byte, fn func(answer []byte)) {
	packed := false
	fields(m, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) bool {
		if num == 6 {
			packed = true
			fn(v)
		}
		return true
	})
	if !packed {
		fn(m)
	}
}

// decodeSessionReply reads an OrderSessionResponse: its google.rpc code and order.
func decodeSessionReply(m []byte) (code uint64, o orderFigures) {
	fields(m, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) bool {
		switch num {
		case 2:
			code = x
		case 5:
			o = decodeOrder(v)
		}
		return true
	})
	return code, o
}

// tickBatch is what a StreamTicksResponse says about continuity and latency.
type tickBatch struct {
	sequence, dropped, count uint64
	receivedNanos            []int64 // engine receive time of each tick (Unix ns), if asked
}

func decodeTicks(m []byte, into *tickBatch, stamps bool) {
	into.sequence, into.dropped, into.count = 0, 0, 0
	into.receivedNanos = into.receivedNanos[:0]
	fields(m, func(num protowire.Number, _ protowire.Type, v []byte, x uint64) bool {
		switch num {
		case 1:
			into.count++
			if stamps {
				into.receivedNanos = append(into.receivedNanos, tickReceived(v))
			}
		case 2:
			into.sequence = x
		case 3:
			into.dropped = x
		}
		return true
	})
}

func tickReceived(tick []byte) int64 {
	var ns int64
	fields(tick, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) bool {
		if num != 8 {
			return true
		}
		var seconds, nanos uint64
		fields(v, func(n protowire.Number, _ protowire.Type, _ []byte, x uint64) bool {
			if n == 1 {
				seconds = x
			} else if n == 2 {
				nanos = x
			}
			return true
		})
		ns = int64(seconds)*1_000_000_000 + int64(nanos)
		return false
	})
	return ns
}
