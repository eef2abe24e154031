//! The self-attention KV cache slot bookkeeping of upstream `WanAttention` (allocation, eviction, transient and predicted entries) and the host K/V pools.
//!
//! Upstream keeps per slot an entry `id` (one id per forward call, −1 when empty), a `mask`
//! (valid) flag and an `is_pred` flag; the metadata is identical in every block, so one
//! [`SlotCache`] serves all blocks while [`KvPools`] holds each block's keys and values.
//!
//! One transformer forward with L new tokens goes:
//! 1. [`SlotCache::begin`]: pick L slots, evicting the oldest entries when too few are free
//!    (evictions are permanent). The returned [`Pending`] carries the cache bias the graph gets:
//!    the cache after eviction, without the call's own slots (the graph attends to its new tokens
//!    separately).
//! 2. Run the step graph with that bias.
//! 3. [`Pending::finish`] with the call's [`CacheUpdate`]: the slots to write the graph's new K/V
//!    into ([`KvPools::write`]), or `None` when the call's entries are discarded.

use ndarray::ArrayView4;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("KV cache exhausted: need {needed} free slots, have {free} of {size} after evicting every entry")]
    Exhausted {
        needed: usize,
        free: usize,
        size: usize,
    },
    #[error("KV pool write to block {block}: there are {blocks} blocks")]
    BlockOutOfRange { block: usize, blocks: usize },
    #[error("KV pool write: slot {slot} is outside the cache of {size} slots")]
    SlotOutOfRange { slot: usize, size: usize },
    #[error("KV pool write of {what}: got {got} values, expected {expected} ([batch {batch}, {tokens} tokens, {heads} heads, {head_dim}])")]
    NewEntryShape {
        what: &'static str,
        got: usize,
        expected: usize,
        batch: usize,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    },
}

/// What happens to a forward's new entries, upstream's `update_cache` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUpdate {
    /// `update_cache = 0`: attended to during the call, then released (denoising steps).
    Discard,
    /// `update_cache = 1`: kept and flagged predicted, so the next [`SlotCache::clear_pred`]
    /// drops them (the t = 0 forward of a predicted chunk).
    KeepPredicted,
    /// `update_cache = 2`: kept as observed history (the feedback of real frames and actions).
    KeepObserved,
}

impl CacheUpdate {
    /// Upstream's integer flag: 0 discards, 1 keeps as predicted, anything else keeps as observed.
    pub fn from_upstream(update_cache: i64) -> Self {
        match update_cache {
            0 => CacheUpdate::Discard,
            1 => CacheUpdate::KeepPredicted,
            _ => CacheUpdate::KeepObserved,
        }
    }
}

/// Per-slot metadata of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotCache {
    id: Vec<i64>,
    valid: Vec<bool>,
    is_pred: Vec<bool>,
}

impl SlotCache {
    /// An empty cache of `size` slots (`(attn_window/2)·(video + action tokens per chunk)`).
    pub fn new(size: usize) -> Self {
        SlotCache {
            id: vec![-1; size],
            valid: vec![false; size],
            is_pred: vec![false; size],
        }
    }

    pub fn size(&self) -> usize {
        self.id.len()
    }

    /// Entry id per slot (−1 for never written or evicted; released slots keep their id).
    pub fn ids(&self) -> &[i64] {
        &self.id
    }

    /// Upstream's `mask`: whether each slot holds an entry that attention sees.
    pub fn valid(&self) -> &[bool] {
        &self.valid
    }

    pub fn is_pred(&self) -> &[bool] {
        &self.is_pred
    }

    pub fn valid_count(&self) -> usize {
        self.valid.iter().filter(|v| **v).count()
    }

    /// The additive attention bias over the slots: 0 where valid, −∞ where empty.
    pub fn bias(&self) -> Vec<f32> {
        self.valid
            .iter()
            .map(|&v| if v { 0.0 } else { f32::NEG_INFINITY })
            .collect()
    }

    /// Starts one forward of `tokens` new tokens: allocates their slots (see [`Self::allocate`])
    /// and snapshots the bias the graph must get. Finish it with [`Pending::finish`].
    pub fn begin(&mut self, tokens: usize) -> Result<Pending<'_>, CacheError> {
        let slots = self.allocate(tokens)?;
        let bias = self.bias();
        Ok(Pending {
            cache: self,
            slots,
            bias,
        })
    }

    /// Upstream `allocate_slots`: the first `count` empty slots in ascending order. When fewer are
    /// empty, the valid slots with the lowest ids are evicted first (mask false, id −1), ties
    /// in slot order. Upstream's `argsort` does not promise an order among equal ids; torch's
    /// CPU sort keeps slot order, which this reproduces. Evictions stay even when the cache is
    /// still too small (then the error).
    pub fn allocate(&mut self, count: usize) -> Result<Vec<usize>, CacheError> {
        let mut free = self.empty_slots();
        if free.len() < count {
            let mut used: Vec<usize> = (0..self.size()).filter(|&s| self.valid[s]).collect();
            used.sort_by_key(|&s| self.id[s]);
            for &slot in used.iter().take(count - free.len()) {
                self.valid[slot] = false;
                self.id[slot] = -1;
            }
            free = self.empty_slots();
        }
        if free.len() < count {
            return Err(CacheError::Exhausted {
                needed: count,
                free: free.len(),
                size: self.size(),
            });
        }
        free.truncate(count);
        Ok(free)
    }

    /// Upstream `update_cache`'s bookkeeping: the slots become valid with one new id (one more than
    /// the largest valid id, or 0 when none is valid) and the given predicted flag.
    pub fn write(&mut self, slots: &[usize], is_pred: bool) {
        let new_id = self.next_id();
        for &slot in slots {
            self.valid[slot] = true;
            self.id[slot] = new_id;
            self.is_pred[slot] = is_pred;
        }
    }

    /// Upstream `restore_cache`: the slots stop being valid (their id and flag stay).
    pub fn release(&mut self, slots: &[usize]) {
        for &slot in slots {
            self.valid[slot] = false;
        }
    }

    /// Upstream `clear_pred_cache`: every predicted slot stops being valid.
    pub fn clear_pred(&mut self) {
        for (valid, &pred) in self.valid.iter_mut().zip(&self.is_pred) {
            if pred {
                *valid = false;
            }
        }
    }

    fn empty_slots(&self) -> Vec<usize> {
        (0..self.size()).filter(|&s| !self.valid[s]).collect()
    }

    fn next_id(&self) -> i64 {
        (0..self.size())
            .filter(|&s| self.valid[s])
            .map(|s| self.id[s])
            .max()
            .map_or(0, |max| max + 1)
    }
}

/// A forward in progress: its slots are allocated (evictions done) but not yet written.
#[must_use = "finish the forward so its entries are kept or released"]
#[derive(Debug)]
pub struct Pending<'a> {
    cache: &'a mut SlotCache,
    slots: Vec<usize>,
    bias: Vec<f32>,
}

impl Pending<'_> {
    /// The slots the call's tokens occupy, in token order.
    pub fn slots(&self) -> &[usize] {
        &self.slots
    }

    /// The graph's `cache_bias`: the cache after eviction, without this call's slots.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Records the call's entries as upstream does after attention. Returns the slots to write
    /// the graph's new K/V into, or `None` when the entries are discarded (their pool contents
    /// are never read, so the write can be skipped).
    pub fn finish(self, update: CacheUpdate) -> Option<Vec<usize>> {
        self.cache
            .write(&self.slots, update == CacheUpdate::KeepPredicted);
        match update {
            CacheUpdate::Discard => {
                self.cache.release(&self.slots);
                None
            }
            CacheUpdate::KeepPredicted | CacheUpdate::KeepObserved => Some(self.slots),
        }
    }
}

/// Host keys and values of every block, each `[batch, size, heads, head_dim]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct KvPools {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    batch: usize,
    size: usize,
    heads: usize,
    head_dim: usize,
}

impl KvPools {
    /// Zero-filled pools for `blocks` blocks.
    pub fn new(blocks: usize, batch: usize, size: usize, heads: usize, head_dim: usize) -> Self {
        let len = batch * size * heads * head_dim;
        KvPools {
            keys: vec![vec![0.0; len]; blocks],
            values: vec![vec![0.0; len]; blocks],
            batch,
            size,
            heads,
            head_dim,
        }
    }

    pub fn blocks(&self) -> usize {
        self.keys.len()
    }

    /// `[batch, size, heads, head_dim]` of each pool.
    pub fn shape(&self) -> [usize; 4] {
        [self.batch, self.size, self.heads, self.head_dim]
    }

    pub fn keys(&self, block: usize) -> ArrayView4<'_, f32> {
        ArrayView4::from_shape(self.shape(), &self.keys[block])
            .expect("pool length matches its shape")
    }

    pub fn values(&self, block: usize) -> ArrayView4<'_, f32> {
        ArrayView4::from_shape(self.shape(), &self.values[block])
            .expect("pool length matches its shape")
    }

    /// Writes a forward's new keys and values, `[batch, slots.len(), heads, head_dim]`, token j
    /// going to slot `slots[j]` in every batch row.
    pub fn write(
        &mut self,
        block: usize,
        slots: &[usize],
        new_keys: &[f32],
        new_values: &[f32],
    ) -> Result<(), CacheError> {
        if block >= self.blocks() {
            return Err(CacheError::BlockOutOfRange {
                block,
                blocks: self.blocks(),
            });
        }
        if let Some(&slot) = slots.iter().find(|&&s| s >= self.size) {
            return Err(CacheError::SlotOutOfRange {
                slot,
                size: self.size,
            });
        }
        self.check_new_entries("keys", new_keys, slots.len())?;
        self.check_new_entries("values", new_values, slots.len())?;
        let row = self.heads * self.head_dim;
        for (pool, new) in [
            (&mut self.keys[block], new_keys),
            (&mut self.values[block], new_values),
        ] {
            for b in 0..self.batch {
                for (token, &slot) in slots.iter().enumerate() {
                    let src = (b * slots.len() + token) * row;
                    let dst = (b * self.size + slot) * row;
                    pool[dst..dst + row].copy_from_slice(&new[src..src + row]);
                }
            }
        }
        Ok(())
    }

    fn check_new_entries(
        &self,
        what: &'static str,
        new: &[f32],
        tokens: usize,
    ) -> Result<(), CacheError> {
        let expected = self.batch * tokens * self.heads * self.head_dim;
        if new.len() == expected {
            return Ok(());
        }
        Err(CacheError::NewEntryShape {
            what,
            got: new.len(),
            expected,
            batch: self.batch,
            tokens,
            heads: self.heads,
            head_dim: self.head_dim,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discarded_call_sees_history_and_leaves_it_unchanged() {
        let mut cache = SlotCache::new(4);
        let kept = cache.begin(2).unwrap().finish(CacheUpdate::KeepObserved);
        assert_eq!(kept, Some(vec![0, 1]));
        let pending = cache.begin(2).unwrap();
        assert_eq!(pending.slots(), &[2, 3]);
        assert_eq!(
            pending.bias(),
            &[0.0, 0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]
        );
        assert_eq!(pending.finish(CacheUpdate::Discard), None);
        assert_eq!(cache.valid(), &[true, true, false, false]);
        assert_eq!(cache.ids(), &[0, 0, 1, 1]);
    }

    #[test]
    fn bias_excludes_evicted_slots() {
        let mut cache = SlotCache::new(3);
        let _ = cache.begin(2).unwrap().finish(CacheUpdate::KeepObserved);
        let _ = cache.begin(1).unwrap().finish(CacheUpdate::KeepObserved);
        let pending = cache.begin(1).unwrap();
        assert_eq!(pending.slots(), &[0]);
        assert_eq!(pending.bias(), &[f32::NEG_INFINITY, 0.0, 0.0]);
    }

    #[test]
    fn pool_write_rejects_a_wrong_token_count() {
        let mut pools = KvPools::new(1, 2, 4, 1, 2);
        let err = pools.write(0, &[1], &[0.0; 2], &[0.0; 4]).unwrap_err();
        assert!(matches!(
            err,
            CacheError::NewEntryShape {
                what: "keys",
                got: 2,
                expected: 4,
                ..
            }
        ));
    }
}
