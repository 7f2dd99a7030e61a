"""One module per gRPC service; validation at the edge, the rest in the engine."""
