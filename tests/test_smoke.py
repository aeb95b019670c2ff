def test_track_then_lookup_shows_the_person(workspace):
    r = workspace.ingest("/v1/track", {"userId": "U-1", "event": "view", "properties": {"sku": "A1"}})
    assert r.status_code == 200, r.text
    person = workspace.person("user_id", "U-1")
    assert person["identifiers"]["user_id"] == ["U-1"]
    events = workspace.timeline(person["person_id"])
    assert [e["event"] for e in events] == ["view"]
