//! The self-attention KV cache slot bookkeeping of upstream `WanAttention` (allocation, eviction, transient and predicted entries) and the host K/V pools.
