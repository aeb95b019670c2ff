"""HTTP adapters: Segment-spec ingest (`ingest`) and the admin REST API (`admin`)."""
