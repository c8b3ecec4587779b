"""The ingestion API's parts (issue 21): API keys so far (:mod:`.keys`)."""
