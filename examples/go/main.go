// mt5exec from Go: connect with a token, make sure a simulated instance runs, stream ticks,
// place an order and follow its executions, then decode the ErrorInfo of a bad order.
//
//	go generate && MT5EXEC_TOKEN=$(cat ../../mt5exec-data/admin.key) go run .
//
// The gen/ package is generated from ../../proto by buf (buf.gen.yaml), not committed.
package main

//go:generate ../../tools/node_modules/.bin/buf generate --template buf.gen.yaml ../../proto

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	v1 "mt5exec/examples/go/gen/mt5exec/v1"
)

// bearer puts the token (an API key or a JWT) on every call.
type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// Plaintext on loopback only; with TLS use credentials.NewClientTLSFromFile and return true.
func (bearer) RequireTransportSecurity() bool { return false }

func getenv(name, otherwise string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return otherwise
}

// errorInfo is the google.rpc.ErrorInfo detail of a failed call (nil when it has none).
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

func main() {
	address := getenv("MT5EXEC_TARGET", "127.0.0.1:50051")
	instanceID := getenv("MT5EXEC_INSTANCE", "example-go")
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(os.Getenv("MT5EXEC_TOKEN"))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	instances := v1.NewInstanceServiceClient(conn)
	orders := v1.NewOrderServiceClient(conn)
	streams := v1.NewStreamServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The instance: created when missing, started when stopped.
	got, err := instances.GetInstance(ctx, &v1.GetInstanceRequest{InstanceId: instanceID})
	switch {
	case status.Code(err) == codes.NotFound:
		config := &v1.InstanceConfig{Symbols: []string{"EURUSD"}, TickRate: 10}
		_, err = instances.CreateInstance(ctx, &v1.CreateInstanceRequest{
			InstanceId: instanceID, Backend: v1.Backend_BACKEND_SIM, Config: config})
	case err == nil && got.Instance.State == v1.InstanceState_INSTANCE_STATE_STOPPED:
		_, err = instances.StartInstance(ctx, &v1.StartInstanceRequest{InstanceId: instanceID})
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("instance %s: ready\n", instanceID)

	// A few ticks.
	tickCtx, stopTicks := context.WithCancel(ctx)
	ticks, err := streams.StreamTicks(tickCtx, &v1.StreamTicksRequest{
		InstanceIds: []string{instanceID}, Symbols: []string{"EURUSD"}})
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		batch, err := ticks.Recv()
		if err != nil {
			log.Fatal(err)
		}
		tick := batch.Ticks[len(batch.Ticks)-1]
		fmt.Printf("tick %s bid=%g ask=%g\n", tick.Symbol, tick.Bid, tick.Ask)
	}
	stopTicks()

	// Executions from now on (START_LIVE); the header says the sequence it starts after.
	executions, err := streams.StreamExecutions(ctx, &v1.StreamExecutionsRequest{
		InstanceId: instanceID, Start: v1.StreamExecutionsRequest_START_LIVE})
	if err != nil {
		log.Fatal(err)
	}
	var header metadata.MD
	if header, err = executions.Header(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("executions start after sequence %s\n", header.Get("mt5exec-start-sequence")[0])

	clientOrderID := fmt.Sprintf("go-%d", time.Now().UnixNano())
	placed, err := orders.PlaceOrder(ctx, &v1.PlaceOrderRequest{
		InstanceId: instanceID, ClientOrderId: clientOrderID, Symbol: "EURUSD",
		Side: v1.Side_SIDE_BUY, Type: v1.OrderType_ORDER_TYPE_MARKET, Volume: 0.01})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("order %s: %s\n", placed.Order.ClientOrderId, placed.Order.Status)

	for filled := false; !filled; {
		message, err := executions.Recv()
		if err != nil {
			log.Fatal("executions ended: ", err)
		}
		for _, event := range message.Events {
			if fill := event.GetFill(); fill != nil {
				fmt.Printf("execution %d: fill %g @ %g\n", event.Sequence, fill.Volume, fill.Price)
				continue
			}
			update := event.GetOrderUpdate()
			fmt.Printf("execution %d: %s\n", event.Sequence, update.Status)
			filled = filled || update.ClientOrderId == clientOrderID &&
				update.Status == v1.OrderStatus_ORDER_STATUS_FILLED
		}
	}

	// A bad order: INVALID_ARGUMENT, and the ErrorInfo names the reason and the field.
	_, err = orders.PlaceOrder(ctx, &v1.PlaceOrderRequest{
		InstanceId: instanceID, ClientOrderId: clientOrderID + "-bad", Symbol: "EURUSD",
		Side: v1.Side_SIDE_BUY, Type: v1.OrderType_ORDER_TYPE_MARKET, Volume: -1})
	info := errorInfo(err)
	if info == nil {
		log.Fatal("no ErrorInfo: ", err)
	}
	fmt.Printf("bad order: %s reason=%s field=%s\n", status.Code(err), info.Reason, info.Metadata["field"])
}
