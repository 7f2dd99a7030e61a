"""The grpc.aio server: wiring, handlers, lifecycle."""
