"""Prompts and answers of production size for the benchmarks, made without a Python loop per row.

    python benchmarks/realistic_text.py [--texts 100000] [--bytes 800-2400]   # speed, sizes, zstd ratio

A :class:`TextMaker` builds, once and from a seed, a vocabulary of pseudo-words (letters drawn by
English frequencies, short words the common ones), 65,536 sentences of 6 to 30 words drawn by a
Zipf law (one in ten ends a paragraph), and the prefixes of a few long "tail" sentences. A text is
a run of sentences then a tail cut to the byte it needs (an answer cut off by ``max_tokens``): its
length is drawn uniformly from a range, its sentences by hashing its key, so text number ``k`` of
a stream is the same in every file, every process and every run. Making a text is one Arrow
``take`` of its pieces, laid end to end: the pieces' concatenation is the column's data buffer.

The text compresses about as English does (zstd: about 3x), not 20x as repeated characters would.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["DEFAULT_ANSWER", "DEFAULT_PROMPT", "TextMaker", "byte_range"]

#: the issue's production sizes (bytes, uniform): about 3.9 kB of text per pair
DEFAULT_PROMPT = "800-2400"
DEFAULT_ANSWER = "300-2000"
_LETTERS = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", np.uint8)
_FREQ = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5,
                  1.0, 0.8, 0.2, 0.2, 0.1, 0.1])  # fmt: skip
_MIN, _MAX = 40, 240  # sentence lengths in bytes, the separator included
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def byte_range(text: str) -> tuple[int, int]:
    """``"800-2400"`` -> (800, 2400); ``"1200"`` -> (1200, 1200)."""
    low, _, high = text.partition("-")
    bounds = (int(low), int(high or low))
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: write a byte range such as 800-2400")
    return bounds


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 of each uint64 (a hash good enough to draw from)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _strings(data: np.ndarray, lengths: np.ndarray) -> pa.StringArray:
    """Strings laid end to end in ``data`` (uint8), with these lengths."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


class TextMaker:
    """Texts by key: the same key and stream give the same text everywhere (the pool comes from ``seed``)."""

    def __init__(self, seed: int = 0, words: int = 30_000, sentences: int = 65_536, tails: int = 256) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        rank = np.log2(np.arange(words) + 2)  # the common words are the short ones
        word_lengths = np.clip(np.rint(1.5 + 0.45 * rank + rng.normal(0, 1.2, words)), 1, 14).astype(np.int64)
        letters = rng.choice(_LETTERS, int(word_lengths.sum()), p=_FREQ / _FREQ.sum())
        vocabulary = _strings(letters, word_lengths)
        zipf = 1.0 / np.arange(1, words + 1) ** 1.1
        counts = rng.integers(6, 31, sentences * 2)  # twice as many as needed: those of the wrong size are dropped
        words_of = pa.ListArray.from_arrays(
            pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32()),
            vocabulary.take(pa.array(rng.choice(words, int(counts.sum()), p=zipf / zipf.sum()))),
        )
        ends = np.where(rng.random(len(counts)) < 0.1, ".\n\n", ". ")
        text = pc.binary_join_element_wise(pc.utf8_capitalize(pc.binary_join(words_of, " ")), pa.array(ends), "")
        fits = pc.and_(pc.greater_equal(pc.binary_length(text), _MIN), pc.less_equal(pc.binary_length(text), _MAX))
        self.sentences = text.filter(fits).slice(0, sentences)
        if len(self.sentences) < sentences:
            raise ValueError("too few sentences of 40-240 bytes; draw more")
        self.lengths = pc.binary_length(self.sentences).to_numpy().astype(np.int64)
        # tails: the prefixes (0 to _MAX - 1 bytes) of runs of 8 sentences, prefix r of run t at r * tails + t
        eights = pa.array(np.arange(0, 8 * tails + 1, 8), pa.int32())
        runs = pc.binary_join(pa.ListArray.from_arrays(eights, self.sentences.slice(0, 8 * tails)), "")
        prefixes = pa.concat_arrays([pc.utf8_slice_codeunits(runs, 0, r) for r in range(_MAX)])
        self.tails = tails
        self.pieces = pa.concat_arrays([self.sentences, prefixes])

    def texts(self, stream: int, keys: np.ndarray, sizes: tuple[int, int]) -> pa.StringArray:
        """Text number ``keys[i]`` of ``stream`` (0 prompts, 1 answers, ...), each of ``sizes`` bytes (a range)."""
        unique, inverse = np.unique(np.asarray(keys, np.int64), return_inverse=True)
        made = self._unique(stream, unique, sizes)
        return made if len(unique) == len(keys) and (unique == keys).all() else made.take(pa.array(inverse))

    def _unique(self, stream: int, keys: np.ndarray, sizes: tuple[int, int]) -> pa.StringArray:
        n = len(keys)
        base = _mix(keys.astype(np.uint64) ^ np.uint64(((stream + 1) << 48) ^ (self.seed << 40)))
        low, high = sizes
        target = (low + base % np.uint64(high - low + 1)).astype(np.int64)
        slots = target // _MIN + 1  # enough sentences to pass the target whatever their lengths
        row = np.repeat(np.arange(n), slots)
        first_slot = np.concatenate([[0], np.cumsum(slots)[:-1]])
        local = np.arange(len(row)) - first_slot[row]
        ids = (_mix(base[row] + local.astype(np.uint64) * _GOLDEN) % np.uint64(len(self.sentences))).astype(np.int64)
        ends = np.cumsum(self.lengths[ids])
        start_of_row = np.concatenate([[0], ends])[first_slot]
        within = ends - start_of_row[row]
        keep = within <= target[row]  # whole sentences that fit; the rest of the target is a tail's prefix
        kept = np.bincount(row[keep], minlength=n)
        used = np.where(kept > 0, within[first_slot + np.maximum(kept - 1, 0)], 0)
        rest = target - used  # < _MAX: the next sentence did not fit
        tail = (base >> np.uint64(20)).astype(np.int64) % self.tails
        out_start = np.concatenate([[0], np.cumsum(kept + 1)])
        flat = np.empty(out_start[-1], np.int64)
        flat[out_start[row[keep]] + local[keep]] = ids[keep]
        flat[out_start[:-1] + kept] = len(self.sentences) + rest * self.tails + tail
        pieces = self.pieces.take(pa.array(flat))  # one text after the other in its data buffer
        offsets = np.frombuffer(pieces.buffers()[1], np.int32, len(pieces) + 1, pieces.offset * 4)[out_start]
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pieces.buffers()[2])


def main() -> None:
    """Make ``--texts`` texts, check their lengths, print the speed and how well they compress."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--bytes", type=byte_range, default=byte_range(DEFAULT_PROMPT), help="length range")
    args = parser.parse_args()
    started = time.perf_counter()
    maker = TextMaker()
    pool_s = time.perf_counter() - started
    keys = np.arange(args.texts)
    started = time.perf_counter()
    texts = maker.texts(0, keys, args.bytes)
    took = time.perf_counter() - started
    lengths = pc.binary_length(texts).to_numpy()
    low, high = args.bytes
    if lengths.min() < low or lengths.max() > high or not texts.equals(maker.texts(0, keys, args.bytes)):
        raise SystemExit(f"lengths {lengths.min()}-{lengths.max()}, not within {low}-{high}, or not repeatable")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": texts}), sink, compression="zstd")
    raw, packed = int(lengths.sum()), sink.getvalue().size
    print(f"pool in {pool_s:.2f} s; {args.texts:,} texts, {raw / 1e6:,.0f} MB in {took:.2f} s "
          f"({raw / 1e6 / took:,.0f} MB/s); Parquet zstd {packed / 1e6:,.0f} MB ({raw / packed:.1f}x)")  # fmt: skip
    print(repr(texts[0].as_py()[:300]))


if __name__ == "__main__":
    main()
