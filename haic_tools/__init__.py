"""Build and local-run tooling, kept out of the runtime service packages: the pose model build (models/,
`haic models build`), the launcher behind `haic up` and its supervisor (launcher.py, supervisor.py), proto
generation (`haic protos`) and the local OpenAI-compatible LLM server the tests and `haic llm-server` use.
No running service imports it."""
