"""The gateway: HTTP upload and catalog API, gRPC progress stream, and the catalog Kafka consumer."""
