//! The flow-matching scheduler of LingBot-VA (shifted sigmas, Euler step).
