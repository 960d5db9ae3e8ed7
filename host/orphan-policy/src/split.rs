//! Calling a policy on a batch whose input may be too large for one call.

use std::ops::Range;

use crate::policy::EvalError;

/// A range of the items of [`split_to_fit`] and the answer of its call.
pub type Piece<O> = (Range<usize>, Result<Vec<O>, EvalError>);

/// Calls `call` on `items`, splitting them in halves for as long as a piece's
/// input is too large for one call ([`EvalError::InputTooLarge`]). Returns
/// every piece called, in order, with its answer: only an item too large on
/// its own, or a failure of another kind, comes back as an error.
pub fn split_to_fit<T, O>(
    items: &[T],
    mut call: impl FnMut(&[T]) -> Result<Vec<O>, EvalError>,
) -> Vec<Piece<O>> {
    let mut answered = Vec::new();
    // Last in, first out: the first half of a split piece goes next.
    let mut pending = Vec::new();
    pending.push(0..items.len());
    while let Some(range) = pending.pop() {
        match call(&items[range.clone()]) {
            Err(error @ EvalError::InputTooLarge { .. }) if range.len() > 1 => {
                tracing::debug!(items = range.len(), error = %error, "splitting a policy batch in halves");
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
            answer => answered.push((range, answer)),
        }
    }
    answered
}
