//! go-cty MessagePack decoding helpers.
