//! UMT5 prompt preparation for LingBot-VA: prompt cleaning and tokenization to a fixed length.
