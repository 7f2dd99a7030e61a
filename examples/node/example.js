// mt5exec from Node: connect with a token, make sure a simulated instance runs, stream ticks,
// place an order and follow its executions, then decode the ErrorInfo of a bad order.
//
//   npm ci && MT5EXEC_TOKEN=$(cat ../../mt5exec-data/admin.key) node example.js
//
// The .proto files are loaded at run time (@grpc/proto-loader): no generated code.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import googleProtos from "google-proto-files";

const PROTO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "../../proto");
const address = process.env.MT5EXEC_TARGET ?? "127.0.0.1:50051";
const instanceId = process.env.MT5EXEC_INSTANCE ?? "example-node";

// The API, and google.rpc.Status / ErrorInfo (google-proto-files) for error details.
const definition = protoLoader.loadSync(
  ["mt5exec/v1/instance.proto", "mt5exec/v1/order.proto", "mt5exec/v1/stream.proto"],
  { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const { mt5exec } = grpc.loadPackageDefinition(definition);
const rpcTypes = googleProtos.loadSync([
  googleProtos.getProtoPath("rpc", "status.proto"),
  googleProtos.getProtoPath("rpc", "error_details.proto"),
]);
const Status = rpcTypes.lookupType("google.rpc.Status");
const ErrorInfo = rpcTypes.lookupType("google.rpc.ErrorInfo");

// Every call carries the token (API key or JWT) as `authorization: Bearer <token>`.
const withToken = (options, next) => new grpc.InterceptingCall(next(options), {
  start(metadata, listener, start) {
    metadata.set("authorization", `Bearer ${process.env.MT5EXEC_TOKEN}`);
    start(metadata, listener);
  },
});
// Plaintext on loopback; with TLS use grpc.credentials.createSsl(ca) instead.
const connect = (Service) => new Service(address, grpc.credentials.createInsecure(), { interceptors: [withToken] });
const { InstanceService, OrderService, StreamService } = mt5exec.v1;
const [instances, orders, streams] = [InstanceService, OrderService, StreamService].map(connect);
const call = (client, method) => promisify(client[method].bind(client));

// The ErrorInfo of a failed call: google.rpc.Status in the `grpc-status-details-bin` trailer.
function errorInfo(error) {
  const [bytes] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!bytes) return undefined;
  const detail = Status.decode(bytes).details.find((any) => any.type_url.endsWith("/google.rpc.ErrorInfo"));
  return detail && ErrorInfo.decode(detail.value);
}

// Reads `count` messages of a server stream (or until `done` says so), then cancels it.
async function take(stream, count, done = () => false) {
  const messages = [];
  for await (const message of stream) {
    messages.push(message);
    if (messages.length >= count || done(message)) break;
  }
  stream.cancel();
  return messages;
}

async function ensureInstance() {
  try {
    const { instance } = await call(instances, "GetInstance")({ instance_id: instanceId });
    if (instance.state === "INSTANCE_STATE_STOPPED") {
      await call(instances, "StartInstance")({ instance_id: instanceId });
    }
  } catch (error) {
    if (error.code !== grpc.status.NOT_FOUND) throw error;
    const config = { symbols: ["EURUSD"], tick_rate: 10 };
    await call(instances, "CreateInstance")({ instance_id: instanceId, backend: "BACKEND_SIM", config });
  }
  console.log(`instance ${instanceId}: ready`);
}

async function main() {
  await ensureInstance();

  const ticks = await take(streams.StreamTicks({ instance_ids: [instanceId], symbols: ["EURUSD"] }), 3);
  for (const { ticks: batch } of ticks) {
    const tick = batch.at(-1);
    console.log(`tick ${tick.symbol} bid=${tick.bid} ask=${tick.ask}`);
  }

  // Executions from now on (START_LIVE); the header says the sequence the stream starts after.
  const executions = streams.StreamExecutions({ instance_id: instanceId, start: "START_LIVE" });
  const headers = await new Promise((resolve) => executions.once("metadata", resolve));
  console.log(`executions start after sequence ${headers.get("mt5exec-start-sequence")[0]}`);

  const clientOrderId = `node-${Date.now()}`;
  const { order } = await call(orders, "PlaceOrder")({
    instance_id: instanceId, client_order_id: clientOrderId, symbol: "EURUSD",
    side: "SIDE_BUY", type: "ORDER_TYPE_MARKET", volume: 0.01,
  });
  console.log(`order ${order.client_order_id}: ${order.status}`);

  const filled = (m) => m.events.some((e) => e.order_update?.client_order_id === clientOrderId
    && e.order_update.status === "ORDER_STATUS_FILLED");
  for (const { events } of await take(executions, 100, filled)) {
    for (const e of events) {
      const what = e.event === "fill" ? `fill ${e.fill.volume} @ ${e.fill.price}` : e.order_update.status;
      console.log(`execution ${e.sequence}: ${what}`);
    }
  }

  // A bad order: INVALID_ARGUMENT, and the ErrorInfo names the reason and the field.
  try {
    await call(orders, "PlaceOrder")({
      instance_id: instanceId, client_order_id: `${clientOrderId}-bad`, symbol: "EURUSD",
      side: "SIDE_BUY", type: "ORDER_TYPE_MARKET", volume: -1,
    });
  } catch (error) {
    const info = errorInfo(error);
    console.log(`bad order: ${grpc.status[error.code]} reason=${info.reason} field=${info.metadata.field}`);
  }
  [instances, orders, streams].forEach((client) => client.close());
}

await main();
