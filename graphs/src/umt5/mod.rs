//! UMT5 text encoder (the `text_encoder/` of a Wan checkpoint) as one graph.
