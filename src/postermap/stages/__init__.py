"""One module per pipeline stage; each exposes ``STAGE`` (a :class:`postermap.pipeline.Stage`)."""
