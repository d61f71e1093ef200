"""The HTTP layer: one router per resource, OpenAI's error shape, bearer-key auth."""
