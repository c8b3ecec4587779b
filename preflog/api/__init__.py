"""The ingestion API's parts (issue 21): API keys (:mod:`.keys`) and per-key rate limits (:mod:`.limits`) so far."""
