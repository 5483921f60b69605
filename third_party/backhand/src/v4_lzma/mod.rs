//! SquashFS v4 with LZMA compression support

pub mod compressor;

pub use compressor::V4LzmaAdaptiveCompressor;
