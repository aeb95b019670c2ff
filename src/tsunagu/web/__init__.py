"""What the server hands to browsers: the JS tag (`/tag.js`) and the settings the Segment
browser SDK asks for (`/v1/projects/{writeKey}/settings`)."""
