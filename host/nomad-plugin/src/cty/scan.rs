//! The pre-decoding scan of a payload's msgpack headers (see [`scan`]).

use super::{CtyError, MAX_DEPTH, MAX_VALUES};

/// Walks the msgpack headers of `bytes` without building anything: counts the values against
/// [`MAX_VALUES`] and checks that every declared length fits in the input (so the decoder
/// never reserves room for elements that are not there). Nesting beyond [`MAX_DEPTH`] and
/// trailing bytes are left to the decoder, which reports them.
pub(super) fn scan(bytes: &[u8]) -> Result<(), CtyError> {
    let truncated = || CtyError::Malformed("the value is cut short".to_owned());
    let mut at = 0usize;
    let mut values = 0usize;
    // Values still expected at each open level; one top-level value.
    let mut pending: Vec<u64> = vec![1];
    let take = |at: &mut usize, n: usize| -> Result<u64, CtyError> {
        let end = at
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(truncated)?;
        let v = bytes[*at..end]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        *at = end;
        Ok(v)
    };
    let skip = |at: &mut usize, n: u64| -> Result<(), CtyError> {
        let n = usize::try_from(n).map_err(|_| truncated())?;
        *at = at
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(truncated)?;
        Ok(())
    };
    while let Some(left) = pending.last_mut() {
        if *left == 0 {
            pending.pop();
            continue;
        }
        *left -= 1;
        values += 1;
        if values > MAX_VALUES {
            return Err(CtyError::TooManyValues { limit: MAX_VALUES });
        }
        let marker = take(&mut at, 1)? as u8;
        let children = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            0x80..=0x8f => 2 * u64::from(marker & 0x0f),
            0x90..=0x9f => u64::from(marker & 0x0f),
            0xa0..=0xbf => {
                skip(&mut at, u64::from(marker & 0x1f))?;
                0
            }
            0xc4 | 0xd9 => {
                let n = take(&mut at, 1)?;
                skip(&mut at, n)?;
                0
            }
            0xc5 | 0xda => {
                let n = take(&mut at, 2)?;
                skip(&mut at, n)?;
                0
            }
            0xc6 | 0xdb => {
                let n = take(&mut at, 4)?;
                skip(&mut at, n)?;
                0
            }
            0xc7 => {
                let n = take(&mut at, 1)?;
                skip(&mut at, n + 1)?;
                0
            }
            0xc8 => {
                let n = take(&mut at, 2)?;
                skip(&mut at, n + 1)?;
                0
            }
            0xc9 => {
                let n = take(&mut at, 4)?;
                skip(&mut at, n + 1)?;
                0
            }
            0xca => {
                skip(&mut at, 4)?;
                0
            }
            0xcb => {
                skip(&mut at, 8)?;
                0
            }
            0xcc | 0xd0 => {
                skip(&mut at, 1)?;
                0
            }
            0xcd | 0xd1 => {
                skip(&mut at, 2)?;
                0
            }
            0xce | 0xd2 => {
                skip(&mut at, 4)?;
                0
            }
            0xcf | 0xd3 => {
                skip(&mut at, 8)?;
                0
            }
            0xd4..=0xd8 => {
                skip(&mut at, 1 + (1u64 << (marker - 0xd4)))?;
                0
            }
            0xdc => take(&mut at, 2)?,
            0xdd => take(&mut at, 4)?,
            0xde => 2 * take(&mut at, 2)?,
            0xdf => 2 * take(&mut at, 4)?,
            0xc1 => {
                return Err(CtyError::Malformed(format!(
                    "reserved marker byte 0xc1 at offset {}",
                    at - 1
                )));
            }
        };
        if children > 0 {
            // Each element takes at least one byte: a longer claim is cut short.
            if children > (bytes.len() - at) as u64 {
                return Err(truncated());
            }
            if pending.len() > MAX_DEPTH {
                // The decoder reports the nesting with its own words.
                return Ok(());
            }
            pending.push(children);
        }
    }
    Ok(())
}
