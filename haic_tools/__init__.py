"""Build and local-run tooling, kept out of the runtime service packages: proto generation (`haic protos`)
and the local OpenAI-compatible LLM server the tests and `haic llm-server` use. None of it is imported by
a running service."""
