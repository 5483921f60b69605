//! Parallel block compression for backhand's squashfs writer.
//!
//! backhand's writer compresses one block at a time on one thread, through
//! its pluggable `CompressionAction`. It also asks for blocks in an order
//! that follows from the files alone: files in path order; a file shorter
//! than a block is appended to the fragment buffer (which is compressed
//! first when the file would overflow it) unless an earlier short file had
//! the same bytes (then it shares that file's fragment, as in mksquashfs:
//! third_party/backhand's patch); a longer file is cut into blocks,
//! all-zero blocks becoming holes; the fragment buffer is compressed last.
//!
//! So a producer thread replays that order over the same files, worker
//! threads compress ahead, and `compress` hands out the result computed for
//! the block it is given. Each result is checked against the bytes backhand
//! actually passes; on any mismatch (or for metadata blocks, which come
//! after the data) the block is compressed on the spot. The output is thus
//! exactly what compressing each block in turn would give: the same bytes
//! on any number of threads.
//!
//! A block that occurs more than once (a file shipped twice, a hard link,
//! repeated content) is compressed once: a first pass counts each block's
//! 64-bit XXH3, and the output of a block counted more than once is kept,
//! under its SHA-256, until the last occurrence has taken it; only a block
//! with the same SHA-256 is given it. Compression is pure, so this changes
//! no byte; it saves the time (backhand itself writes a duplicate file's
//! blocks, then seeks back over them). The count runs on every thread,
//! each replaying its share of the files: a file's blocks are counted
//! exactly, the fragment buffers (built across files) are not, and a
//! miscount only means a block compressed twice or an output kept to the
//! end.
//!
//! Memory is bounded: at most `window` blocks are in flight or waiting,
//! each holding its input and its output (≤ 2 × block size), and the
//! outputs of repeated blocks whose later occurrences are still to come.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Condvar, Mutex};

use backhand::compression::{CompressionAction, Compressor, DefaultCompressor};
use backhand::{BackhandError, FilesystemCompressor, SuperBlock};

use super::Compression;

/// How each block is compressed: the same settings as mksquashfs's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    pub compression: Compression,
    pub block_size: u32,
}

/// xz preset (mksquashfs and liblzma default).
const XZ_PRESET: u32 = 6;
/// zstd level (mksquashfs default).
pub const ZSTD_LEVEL: i32 = 15;
/// gzip level (mksquashfs default), 32 KiB window.
const GZIP_LEVEL: u32 = 9;

impl Codec {
    /// Compress one block. Pure: the same input gives the same bytes.
    pub fn compress(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        match self.compression {
            Compression::Xz => {
                use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
                let mut opts = LzmaOptions::new_preset(XZ_PRESET).map_err(|e| e.to_string())?;
                opts.dict_size(self.block_size.max(4096));
                let mut filters = Filters::new();
                filters.lzma2(&opts);
                let mut stream = Stream::new_stream_encoder(&filters, Check::Crc32)
                    .map_err(|e| e.to_string())?;
                let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16 + 128);
                loop {
                    let before = stream.total_in() as usize;
                    let status = stream
                        .process_vec(&bytes[before..], &mut out, Action::Finish)
                        .map_err(|e| e.to_string())?;
                    if status == Status::StreamEnd {
                        return Ok(out);
                    }
                    out.reserve(out.capacity().max(4096));
                }
            }
            Compression::Zstd => zstd::bulk::compress(bytes, ZSTD_LEVEL).map_err(|e| e.to_string()),
            Compression::Gzip => {
                use flate2::{write::ZlibEncoder, Compression as Level};
                use std::io::Write;
                let mut enc =
                    ZlibEncoder::new(Vec::with_capacity(bytes.len()), Level::new(GZIP_LEVEL));
                enc.write_all(bytes).map_err(|e| e.to_string())?;
                enc.finish().map_err(|e| e.to_string())
            }
        }
    }
}

/// A block's input and what compressing it gave.
type Computed = (Vec<u8>, Result<Vec<u8>, String>);

/// A block's SHA-256.
type Digest = [u8; 32];

fn digest(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// What compressing a block gave.
type Compressed = Result<Vec<u8>, String>;

/// A block's 64-bit XXH3: cheap enough to take of every block; equal ones
/// are then told apart by their SHA-256.
fn weak(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Repeated blocks, found by their weak hash: how many occurrences are
/// still to be compressed or taken, and the outputs kept so far, each under
/// its block's SHA-256 (two different blocks may share a weak hash; only
/// the SHA-256 of the very bytes hands an output out).
#[derive(Default)]
struct Repeats {
    left: std::collections::HashMap<u64, (u32, Vec<(Digest, Compressed)>)>,
    /// Occurrences answered from a kept output (for the log).
    reused: u64,
}

impl Repeats {
    /// Count the blocks `replay` gives on `threads` threads, thread `t`
    /// taking files `t`, `t + threads`, ...; keep those seen twice or more.
    fn count(files: &[PathBuf], block_size: usize, threads: usize) -> Repeats {
        let counts = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let share: Vec<PathBuf> =
                            files.iter().skip(t).step_by(threads).cloned().collect();
                        let mut seen: std::collections::HashMap<u64, u32> = Default::default();
                        let _ = replay(&share, block_size, &mut |input| {
                            *seen.entry(weak(&input)).or_default() += 1;
                            true
                        });
                        seen
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a counting thread"))
                .collect::<Vec<_>>()
        });
        let mut all: std::collections::HashMap<u64, u32> = Default::default();
        for (w, n) in counts.into_iter().flatten() {
            *all.entry(w).or_default() += n;
        }
        Repeats {
            left: all
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(w, n)| (w, (n, Vec::new())))
                .collect(),
            reused: 0,
        }
    }

    fn is_repeated(&self, w: u64) -> bool {
        self.left.contains_key(&w)
    }

    /// The kept output of the block whose hashes are `w` and `d`, if its
    /// first occurrence has been compressed; all of `w`'s outputs are
    /// dropped after its last occurrence.
    fn take(&mut self, w: u64, d: &Digest) -> Option<Compressed> {
        let (_, kept) = self.left.get(&w)?;
        let out = kept.iter().find(|(k, _)| k == d)?.1.clone();
        self.done(w);
        self.reused += 1;
        Some(out)
    }

    /// Keep the output of a repeated block for its later occurrences.
    fn keep(&mut self, w: u64, d: Digest, out: &Compressed) {
        if let Some((_, kept)) = self.left.get_mut(&w) {
            if !kept.iter().any(|(k, _)| *k == d) {
                kept.push((d, out.clone()));
            }
        }
        self.done(w);
    }

    /// One occurrence of `w` is done.
    fn done(&mut self, w: u64) {
        if let Some((left, _)) = self.left.get_mut(&w) {
            *left -= 1;
            if *left == 0 {
                self.left.remove(&w);
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// The sequence number backhand's next `compress` call should have.
    next: u64,
    /// Results computed ahead: seq → (input, output).
    done: BTreeMap<u64, Computed>,
    /// How many jobs the producer made, once it has finished.
    total: Option<u64>,
    /// A call did not match the prediction: stop predicting.
    diverged: bool,
    /// The producer's next sequence number (for the window).
    produced: u64,
}

struct Shared {
    state: Mutex<State>,
    repeats: Mutex<Repeats>,
    cv: Condvar,
    window: u64,
}

/// The `CompressionAction` handed to backhand (leaked: backhand wants `'static`).
pub struct Parallel {
    codec: Codec,
    shared: Arc<Shared>,
}

impl Parallel {
    /// Start predicting and compressing the blocks of `files` (in the order
    /// backhand will write them) on `threads` workers.
    pub fn start(codec: Codec, files: Vec<PathBuf>, threads: usize) -> &'static Parallel {
        let threads = threads.max(1);
        // Measured on 2 cores: more workers or a deeper window did not help.
        let window = (2 * threads + 2) as u64;
        let repeats = Repeats::count(&files, codec.block_size as usize, threads);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            repeats: Mutex::new(repeats),
            cv: Condvar::new(),
            window,
        });
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let shared = shared.clone();
            std::thread::spawn(move || loop {
                let job = job_rx.lock().expect("job queue").recv();
                let Ok((seq, input)) = job else { break };
                let output = shared.compress_once(&codec, &input);
                let mut st = shared.state.lock().expect("pipeline state");
                if !st.diverged {
                    st.done.insert(seq, (input, output));
                }
                shared.cv.notify_all();
            });
        }
        let producer_shared = shared.clone();
        std::thread::spawn(move || {
            let shared = producer_shared;
            let mut seq = 0u64;
            let mut emit = |input: Vec<u8>| -> bool {
                {
                    let mut st = shared.state.lock().expect("pipeline state");
                    while !st.diverged && seq >= st.next + shared.window {
                        st = shared.cv.wait(st).expect("pipeline state");
                    }
                    if st.diverged {
                        return false;
                    }
                    st.produced = seq + 1;
                }
                let ok = job_tx.send((seq, input)).is_ok();
                seq += 1;
                ok
            };
            let complete = replay(&files, codec.block_size as usize, &mut emit);
            let mut st = shared.state.lock().expect("pipeline state");
            if complete.is_err() {
                // An unreadable file: backhand will report it; stop predicting.
                st.diverged = true;
                st.done.clear();
            }
            st.total = Some(seq);
            shared.cv.notify_all();
        });
        Box::leak(Box::new(Parallel { codec, shared }))
    }

    /// The result for `bytes`: predicted, or computed now.
    fn take(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut st = self.shared.state.lock().expect("pipeline state");
        loop {
            if st.diverged || st.total.is_some_and(|t| st.next >= t) {
                drop(st);
                return self.codec.compress(bytes);
            }
            let next = st.next;
            if let Some((input, output)) = st.done.remove(&next) {
                st.next += 1;
                self.shared.cv.notify_all();
                if input == bytes {
                    return output;
                }
                // backhand asked for something else: predict no more.
                st.diverged = true;
                st.done.clear();
                self.shared.cv.notify_all();
                drop(st);
                return self.codec.compress(bytes);
            }
            st = self.shared.cv.wait(st).expect("pipeline state");
        }
    }

    /// How many blocks were repeats, compressed once (for the log).
    pub fn reused(&self) -> u64 {
        self.shared.repeats.lock().expect("repeats").reused
    }

    /// How many calls were answered from the prediction (for the log).
    pub fn predicted(&self) -> u64 {
        let st = self.shared.state.lock().expect("pipeline state");
        if st.diverged {
            0
        } else {
            st.next
        }
    }
}

impl Shared {
    /// Compress `input`, or take a repeated block's kept output.
    fn compress_once(&self, codec: &Codec, input: &[u8]) -> Compressed {
        // Hashed outside the lock: the other workers go on meanwhile.
        let w = weak(input);
        if !self.repeats.lock().expect("repeats").is_repeated(w) {
            return codec.compress(input);
        }
        let d = digest(input);
        if let Some(out) = self.repeats.lock().expect("repeats").take(w, &d) {
            return out;
        }
        let out = codec.compress(input);
        self.repeats.lock().expect("repeats").keep(w, d, &out);
        out
    }
}

/// Replay backhand's block order over `files`, calling `emit` with the
/// bytes of each compress call. Stops early if `emit` returns false.
fn replay(
    files: &[PathBuf],
    block_size: usize,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> std::io::Result<()> {
    let mut fragment: Vec<u8> = Vec::with_capacity(block_size);
    // The short files already in a fragment: one with the same bytes is not
    // appended again (third_party/backhand's patch).
    let mut in_fragments: std::collections::HashSet<(usize, Digest)> = Default::default();
    for path in files {
        let mut file = File::open(path)?;
        let mut chunk = read_chunk(&mut file, block_size)?;
        if chunk.is_empty() {
            continue;
        }
        if chunk.len() < block_size {
            if !in_fragments.insert((chunk.len(), digest(&chunk))) {
                continue;
            }
            if chunk.len() + fragment.len() > block_size
                && !emit(std::mem::replace(
                    &mut fragment,
                    Vec::with_capacity(block_size),
                ))
            {
                return Ok(());
            }
            fragment.extend_from_slice(&chunk);
            continue;
        }
        while !chunk.is_empty() {
            if !chunk.iter().all(|b| *b == 0) && !emit(chunk) {
                return Ok(());
            }
            chunk = read_chunk(&mut file, block_size)?;
        }
    }
    // backhand compresses the last fragment buffer even when it is empty.
    emit(fragment);
    Ok(())
}

fn read_chunk(file: &mut File, block_size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; block_size];
    let mut got = 0;
    while got < block_size {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

impl CompressionAction for Parallel {
    type Error = BackhandError;
    type Compressor = Compressor;
    type FilesystemCompressor = FilesystemCompressor;
    type SuperBlock = SuperBlock;

    fn decompress(
        &self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        compressor: Compressor,
    ) -> Result<(), BackhandError> {
        DefaultCompressor.decompress(bytes, out, compressor)
    }

    fn compress(
        &self,
        bytes: &[u8],
        _fc: FilesystemCompressor,
        _block_size: u32,
    ) -> Result<Vec<u8>, BackhandError> {
        self.take(bytes)
            .map_err(|e| BackhandError::from(std::io::Error::other(e)))
    }

    fn compression_options(
        &self,
        superblock: &mut SuperBlock,
        kind: &backhand::kind::Kind,
        fs_compressor: FilesystemCompressor,
    ) -> Result<Option<Vec<u8>>, BackhandError> {
        DefaultCompressor.compression_options(superblock, kind, fs_compressor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_follows_backhands_order() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("finnix-replay");
        std::fs::create_dir_all(&dir).unwrap();
        let bs = 8;
        let write = |name: &str, data: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let files = vec![
            write("a", b"12345"),      // fragment buffer: 12345
            write("b", b""),           // nothing
            write("c", b"ABCDEFGHIJ"), // block ABCDEFGH, tail block IJ
            write("d", b"xyz9"),       // 5 + 4 > 8: flush 12345, buffer xyz9
            write("e", &[0u8; 16]),    // two holes: nothing
            write("f", b"01234567"),   // exactly one block
            write("g", b"12345"),      // the same bytes as a: shares its fragment
            write("h", b"12346"),      // same length, other bytes: 4 + 5 > 8
        ];
        let mut calls = Vec::new();
        replay(&files, bs, &mut |v| {
            calls.push(v);
            true
        })
        .unwrap();
        let calls: Vec<&[u8]> = calls.iter().map(|v| v.as_slice()).collect();
        assert_eq!(
            calls,
            [
                &b"ABCDEFGH"[..],
                b"IJ",
                b"12345",
                b"01234567",
                b"xyz9",
                b"12346"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kept_output_goes_only_to_the_same_bytes() {
        // Two different blocks under one weak hash (as a collision would
        // put them), three occurrences counted.
        let mut r = Repeats::default();
        r.left.insert(7, (3, Vec::new()));
        let (a, b) = (digest(b"block a"), digest(b"block b"));
        r.keep(7, a, &Ok(b"A".to_vec()));
        assert_eq!(
            r.take(7, &b),
            None,
            "b must be compressed, not given a's output"
        );
        r.keep(7, b, &Ok(b"B".to_vec()));
        assert_eq!(r.take(7, &a), Some(Ok(b"A".to_vec())));
        assert_eq!(r.reused, 1);
        // The third occurrence was the last: nothing is kept any more.
        assert!(!r.is_repeated(7));
        assert_eq!(r.take(7, &a), None);
    }

    #[test]
    fn codecs_round_trip() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for compression in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            let codec = Codec {
                compression,
                block_size: 131072,
            };
            let out = codec.compress(&data[..131072]).unwrap();
            assert!(out.len() < 131072 / 4, "{compression:?}");
            assert_eq!(
                out,
                codec.compress(&data[..131072]).unwrap(),
                "deterministic"
            );
            let mut back = Vec::with_capacity(131072);
            let c = match compression {
                Compression::Xz => Compressor::Xz,
                Compression::Zstd => Compressor::Zstd,
                Compression::Gzip => Compressor::Gzip,
            };
            DefaultCompressor.decompress(&out, &mut back, c).unwrap();
            assert_eq!(back, &data[..131072], "{compression:?}");
        }
    }
}
