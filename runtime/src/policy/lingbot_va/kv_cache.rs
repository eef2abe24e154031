//! The self-attention KV cache slot bookkeeping of upstream `WanAttention` (allocation, eviction, transient and predicted entries).
//!
//! Upstream keeps per slot an entry `id` (one id per forward call, −1 when empty), a `mask`
//! (valid) flag and an `is_pred` flag; the metadata is identical in every block, so one
//! [`SlotCache`] serves all blocks. The keys and values themselves stay in the backend: the
//! step graph takes each block's pools and returns them with the call's entries written.
//!
//! One transformer forward with L new tokens goes:
//! 1. [`SlotCache::begin`]: pick L slots, evicting the oldest entries when too few are free
//!    (evictions are permanent). The returned [`Pending`] carries the cache bias the graph gets:
//!    the cache after eviction, without the call's own slots (the graph attends to its new tokens
//!    separately).
//! 2. Run the step graph with that bias and [`Pending::slots`].
//! 3. [`Pending::finish`] with the call's [`CacheUpdate`]: whether to keep the pools the graph
//!    returned (the call's entries written) or the ones it got (the entries discarded).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("KV cache exhausted: need {needed} free slots, have {free} of {size} after evicting every entry")]
    Exhausted {
        needed: usize,
        free: usize,
        size: usize,
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

    /// Records the call's entries as upstream does after attention. Returns the slots the
    /// entries stay in, or `None` when they are discarded (the pools from before the call are
    /// kept: the discarded slots' contents are never read).
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
}
